-- Daily rollups for the dashboard (cflogs.dashboard): per UTC day, host and
-- dimension, so that no view scans page_views or sessions. Each dimension is a
-- (dimension, value) pair; 'total' has the value '' and 'hour' the hour of day
-- ('00'..'23', UTC), which lets the time series and other time zones work from
-- the same rows.

-- The value of one dimension of a page view, NULL when it has none (not counted).
-- Human dimensions are NULL for a bot's page view and the other way round. With
-- a constant `dimension` the CASE folds to one expression: the dashboard filters
-- with it, so filtered and unfiltered figures follow the same rules.
CREATE FUNCTION page_view_dimension(p page_views, dimension text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN p.is_bot THEN CASE dimension
        WHEN 'bot' THEN coalesce(p.bot_name, p.browser, '(unknown)')
        WHEN 'bot_total' THEN '' END
    ELSE CASE dimension
        WHEN 'total' THEN ''
        WHEN 'hour' THEN to_char(p.ts AT TIME ZONE 'UTC', 'HH24')
        WHEN 'page' THEN p.path
        WHEN 'status' THEN p.status::text
        WHEN 'device' THEN coalesce(p.device_type, '(unknown)')
        WHEN 'browser' THEN coalesce(p.browser, '(unknown)')
        WHEN 'browser_version' THEN
            coalesce(p.browser, '(unknown)') || coalesce(' ' || split_part(p.browser_version, '.', 1), '')
        WHEN 'os' THEN coalesce(p.os, '(unknown)')
        WHEN 'os_version' THEN coalesce(p.os, '(unknown)') || coalesce(' ' || p.os_version, '')
        WHEN 'country' THEN coalesce(p.country_code, '--')
        WHEN 'region' THEN p.region || ', ' || coalesce(p.country_code, '--')
        WHEN 'city' THEN p.city || ', ' || coalesce(p.country_code, '--')
        WHEN 'search' THEN lower(p.search_terms)
        WHEN 'edge' THEN p.edge_location END
    END
$$;

-- Every dimension of a page view that has a value; countries with their names.
CREATE FUNCTION page_view_dimensions(p page_views)
    RETURNS TABLE (dimension text, value text, label text)
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT d.dimension, v.value,
           CASE WHEN d.dimension = 'country'
                THEN coalesce(p.country, CASE WHEN p.country_code IS NULL THEN '(unknown)' END) END
    FROM unnest(ARRAY['total', 'hour', 'page', 'status', 'device', 'browser', 'browser_version',
                      'os', 'os_version', 'country', 'region', 'city', 'search', 'edge', 'bot',
                      'bot_total']) AS d (dimension),
         LATERAL (SELECT page_view_dimension(p, d.dimension) AS value) AS v
    WHERE v.value IS NOT NULL
$$;

-- The same for sessions, by their first page view (sources, technology) and
-- their first and last page (entry, exit).
CREATE FUNCTION session_dimension(
    dimension text, started_at timestamptz, landing_page text, exit_page text,
    referrer_category text, referrer_source text, referrer_host text, utm_source text,
    utm_medium text, utm_campaign text, device_type text, browser text, os text,
    country_code text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE dimension
        WHEN 'total' THEN ''
        WHEN 'hour' THEN to_char(started_at AT TIME ZONE 'UTC', 'HH24')
        WHEN 'entry' THEN landing_page
        WHEN 'exit' THEN exit_page
        WHEN 'category' THEN coalesce(referrer_category, 'direct')
        WHEN 'source' THEN coalesce(referrer_source, referrer_host, '(direct)')
        WHEN 'campaign' THEN
            utm_source || ' / ' || coalesce(utm_medium, '-') || ' / ' || coalesce(utm_campaign, '-')
        WHEN 'device' THEN coalesce(device_type, '(unknown)')
        WHEN 'browser' THEN coalesce(browser, '(unknown)')
        WHEN 'os' THEN coalesce(os, '(unknown)')
        WHEN 'country' THEN coalesce(country_code, '--') END
$$;

CREATE FUNCTION session_dimensions(
    started_at timestamptz, landing_page text, exit_page text, referrer_category text,
    referrer_source text, referrer_host text, utm_source text, utm_medium text,
    utm_campaign text, device_type text, browser text, os text, country_code text)
    RETURNS TABLE (dimension text, value text)
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT d.dimension, v.value
    FROM unnest(ARRAY['total', 'hour', 'entry', 'exit', 'category', 'source', 'campaign',
                      'device', 'browser', 'os', 'country']) AS d (dimension),
         LATERAL (SELECT session_dimension(d.dimension, started_at, landing_page, exit_page,
                      referrer_category, referrer_source, referrer_host, utm_source, utm_medium,
                      utm_campaign, device_type, browser, os, country_code) AS value) AS v
    WHERE v.value IS NOT NULL
$$;

-- Page views by day and dimension value (and, as 'not_found', the requests
-- answered 404 by path: they are no page views, ingest counts them as it reads);
-- file_page_views holds each log object's own share, so that loading an object
-- again replaces exactly what it added. monthly_page_views: the same by month
-- (day is the first of the month), for long ranges; rows may stay at zero there.
CREATE TABLE daily_page_views (
    dimension  text   NOT NULL,
    day        date   NOT NULL,
    host       text   NOT NULL,
    value      text   NOT NULL,
    label      text,
    page_views bigint NOT NULL,
    bytes      bigint NOT NULL,
    time_taken double precision NOT NULL,  -- seconds, summed over the timed page views
    timed      bigint NOT NULL,
    -- Covering: a view reads a range of one dimension from the index alone, in
    -- order, wherever the rows lie in the table.
    PRIMARY KEY (dimension, day, host, value) INCLUDE (label, page_views, bytes, time_taken, timed)
);
CREATE TABLE file_page_views (file_id bigint NOT NULL, LIKE daily_page_views);
CREATE INDEX file_page_views_file ON file_page_views (file_id);
CREATE TABLE monthly_page_views (LIKE daily_page_views INCLUDING ALL);

-- traffic_hourly by UTC day (all requests); file_daily_traffic: each object's share.
CREATE TABLE daily_traffic (
    day          date   NOT NULL,
    host         text   NOT NULL,
    edge         text   NOT NULL,
    status_class text   NOT NULL,
    kind         text   NOT NULL,
    requests     bigint NOT NULL,
    bytes        bigint NOT NULL,
    hits         bigint NOT NULL,
    PRIMARY KEY (day, host, edge, status_class, kind) INCLUDE (requests, bytes, hits)
);
CREATE TABLE file_daily_traffic (file_id bigint NOT NULL, LIKE daily_traffic);
CREATE INDEX file_daily_traffic_file ON file_daily_traffic (file_id);

-- A filtered view reads the page views and sessions of its range: block ranges
-- of time, almost free to keep (rows arrive roughly in time order).
CREATE INDEX page_views_ts_brin ON page_views USING brin (ts);
CREATE INDEX sessions_started_brin ON sessions USING brin (started_at);

-- Each human visitor once per day and host it was seen (with its page views):
-- distinct visitors over any range of days without reading page_views.
CREATE TABLE visitor_days (
    day        date   NOT NULL,
    host       text   NOT NULL,
    visitor_id bigint NOT NULL,
    page_views bigint NOT NULL,
    PRIMARY KEY (day, host, visitor_id)
);
CREATE TABLE file_visitor_days (file_id bigint NOT NULL, LIKE visitor_days);
CREATE INDEX file_visitor_days_file ON file_visitor_days (file_id);

-- Distinct visitors over long ranges: a HyperLogLog sketch (2048 one-byte registers,
-- about 2.3% standard error) of each day's and month's visitor ids. Of a 64-bit
-- hash of the id, the low 11 bits choose the register, the position of the first
-- 1 in the next 53 is its value. Ranges of up to 7 days count visitor_days
-- exactly instead.
CREATE TABLE daily_visitor_sketches (
    day    date  NOT NULL,
    host   text  NOT NULL,
    sketch bytea NOT NULL,
    PRIMARY KEY (day, host)
);
CREATE TABLE monthly_visitor_sketches (LIKE daily_visitor_sketches INCLUDING ALL);
-- Days whose visitors changed since their sketch was made: ingest notes them (a
-- sketch takes longer to make than the rest of a small object's load), the
-- stitcher remakes their sketches on its schedule.
CREATE TABLE stale_visitor_sketches (
    day  date NOT NULL,
    host text NOT NULL,
    PRIMARY KEY (day, host)
);

-- The sketches of the given days (and hosts), from visitor_days; then those of
-- their months, merged from the days' sketches.
CREATE FUNCTION visitor_sketches_update(days date[], hosts text[]) RETURNS void
    LANGUAGE sql AS $$
    WITH keys AS (
        SELECT DISTINCT day, host FROM unnest(days, hosts) AS k (day, host)
    ), registers AS (
        SELECT k.day, k.host, (h & 2047)::int AS i,
               max(54 - length(ltrim(((h >> 11) & 9007199254740991)::bit(64)::text, '0'))) AS r
        FROM keys k JOIN visitor_days v ON v.day = k.day AND v.host = k.host,
             LATERAL (SELECT hashint8extended(v.visitor_id, 0) AS h) AS hashed
        GROUP BY 1, 2, 3
    ), sketches AS (
        SELECT k.day, k.host,
               decode(string_agg(lpad(to_hex(coalesce(r.r, 0)), 2, '0'), '' ORDER BY g.i),
                      'hex') AS sketch,
               count(r.r) AS used
        FROM keys k CROSS JOIN generate_series(0, 2047) AS g (i)
        LEFT JOIN registers r ON r.day = k.day AND r.host = k.host AND r.i = g.i
        GROUP BY 1, 2
    ), removed AS (
        DELETE FROM daily_visitor_sketches d USING sketches s
        WHERE d.day = s.day AND d.host = s.host AND s.used = 0
    )
    INSERT INTO daily_visitor_sketches AS t
    SELECT day, host, sketch FROM sketches WHERE used > 0 ORDER BY 1, 2
    ON CONFLICT (day, host) DO UPDATE SET sketch = excluded.sketch;

    WITH months AS (
        SELECT DISTINCT date_trunc('month', day)::date AS month, host
        FROM unnest(days, hosts) AS k (day, host)
    ), merged AS (
        SELECT m.month, m.host,
               decode(string_agg(lpad(to_hex(r), 2, '0'), '' ORDER BY i), 'hex') AS sketch
        FROM months m CROSS JOIN LATERAL (
            SELECT g.i, max(get_byte(d.sketch, g.i)) AS r
            FROM daily_visitor_sketches d, generate_series(0, 2047) AS g (i)
            WHERE d.host = m.host AND d.day >= m.month AND d.day < m.month + interval '1 month'
            GROUP BY g.i
        ) AS x
        GROUP BY 1, 2
    ), removed AS (
        DELETE FROM monthly_visitor_sketches t USING months m
        WHERE t.day = m.month AND t.host = m.host
          AND NOT EXISTS (SELECT 1 FROM merged x WHERE x.month = m.month AND x.host = m.host)
    )
    INSERT INTO monthly_visitor_sketches AS t
    SELECT month, host, sketch FROM merged ORDER BY 1, 2
    ON CONFLICT (day, host) DO UPDATE SET sketch = excluded.sketch;
$$;

-- The estimated number of distinct visitors of a set of sketches.
CREATE FUNCTION visitor_estimate(sketches bytea[]) RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH registers AS (
        SELECT g.i, coalesce(max(get_byte(s, g.i)), 0) AS r
        FROM generate_series(0, 2047) AS g (i) LEFT JOIN unnest(sketches) AS s ON true
        GROUP BY g.i
    ), sums AS (
        SELECT sum(power(2::float8, -r)) AS z, count(*) FILTER (WHERE r = 0) AS zeros
        FROM registers
    )
    SELECT round(CASE
        WHEN 0.7213 / (1 + 1.079 / 2048) * 2048 * 2048 / z <= 2.5 * 2048 AND zeros > 0
            THEN 2048 * ln(2048.0 / zeros)  -- few visitors: linear counting
        ELSE 0.7213 / (1 + 1.079 / 2048) * 2048 * 2048 / z END)::bigint
    FROM sums
$$;

-- Sessions by the UTC day they started and dimension value. Kept up to date from
-- the statement triggers below, whatever statement writes sessions (the stitcher).
CREATE TABLE daily_sessions (
    dimension  text   NOT NULL,
    day        date   NOT NULL,
    host       text   NOT NULL,
    value      text   NOT NULL,
    sessions   bigint NOT NULL,
    bounces    bigint NOT NULL,  -- sessions of one page view
    duration   double precision NOT NULL,  -- seconds, summed
    page_views bigint NOT NULL,
    PRIMARY KEY (dimension, day, host, value) INCLUDE (sessions, bounces, duration, page_views)
);
CREATE TABLE monthly_sessions (LIKE daily_sessions INCLUDING ALL);

-- What each statement writing sessions changed, by rollup key, appended by the
-- triggers below: appending takes no lock another stitcher could wait for (a
-- batch holds its transaction open while others run). The stitcher adds the
-- changes to daily_sessions and monthly_sessions after its batches
-- (daily_sessions_apply_changes, in a short transaction of its own).
CREATE TABLE daily_sessions_changes (LIKE daily_sessions);

CREATE FUNCTION daily_sessions_note() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT -1 AS sign, * FROM old_rows'
        ELSE 'SELECT 1 AS sign, * FROM new_rows UNION ALL SELECT -1 AS sign, * FROM old_rows' END;
BEGIN
    EXECUTE format($sql$
        INSERT INTO daily_sessions_changes
        SELECT * FROM (
            SELECT d.dimension, (c.started_at AT TIME ZONE 'UTC')::date AS day, c.host, d.value,
                   sum(c.sign) AS sessions,
                   coalesce(sum(c.sign) FILTER (WHERE c.page_views = 1), 0) AS bounces,
                   sum(c.sign * extract(epoch FROM c.duration)) AS duration,
                   sum(c.sign * c.page_views) AS page_views
            FROM (%s) AS c
            CROSS JOIN LATERAL session_dimensions(c.started_at, c.landing_page, c.exit_page,
                c.referrer_category, c.referrer_source, c.referrer_host, c.utm_source,
                c.utm_medium, c.utm_campaign, c.device_type, c.browser, c.os, c.country_code) AS d
            GROUP BY 1, 2, 3, 4
        ) AS delta
        WHERE sessions <> 0 OR bounces <> 0 OR duration <> 0 OR page_views <> 0 $sql$, changed);
    RETURN NULL;
END $$;

CREATE FUNCTION daily_sessions_apply_changes() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    dims text[];
    days date[];
    hosts text[];
    vals text[];
    taken bigint;
BEGIN
    WITH changes AS (
        DELETE FROM daily_sessions_changes RETURNING *
    ), delta AS (
        SELECT dimension, day, host, value, sum(sessions) AS sessions, sum(bounces) AS bounces,
               sum(duration) AS duration, sum(page_views) AS page_views, count(*) AS entries
        FROM changes GROUP BY 1, 2, 3, 4
    ), monthly AS (
        INSERT INTO monthly_sessions AS t
        SELECT dimension, date_trunc('month', day)::date, host, value, sum(sessions),
               sum(bounces), sum(duration), sum(page_views)
        FROM delta GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (dimension, day, host, value) DO UPDATE SET
            sessions = t.sessions + excluded.sessions, bounces = t.bounces + excluded.bounces,
            duration = t.duration + excluded.duration,
            page_views = t.page_views + excluded.page_views
    ), written AS (
        INSERT INTO daily_sessions AS t
        SELECT dimension, day, host, value, sessions, bounces, duration, page_views
        FROM delta ORDER BY 1, 2, 3, 4
        ON CONFLICT (dimension, day, host, value) DO UPDATE SET
            sessions = t.sessions + excluded.sessions, bounces = t.bounces + excluded.bounces,
            duration = t.duration + excluded.duration,
            page_views = t.page_views + excluded.page_views
        RETURNING dimension, day, host, value, sessions
    )
    SELECT (SELECT coalesce(sum(entries), 0) FROM delta),
           array_agg(dimension), array_agg(day), array_agg(host), array_agg(value)
    INTO taken, dims, days, hosts, vals
    FROM written WHERE sessions = 0;
    -- Rows left without sessions (the stitcher merged or moved them) go.
    IF dims IS NOT NULL THEN
        DELETE FROM daily_sessions t
        USING unnest(dims, days, hosts, vals) AS z (dimension, day, host, value)
        WHERE t.dimension = z.dimension AND t.day = z.day AND t.host = z.host
          AND t.value = z.value AND t.sessions = 0;
    END IF;
    RETURN taken;
END $$;

CREATE TRIGGER sessions_rollup_insert AFTER INSERT ON sessions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION daily_sessions_note();
CREATE TRIGGER sessions_rollup_delete AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION daily_sessions_note();
CREATE TRIGGER sessions_rollup_update AFTER UPDATE ON sessions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION daily_sessions_note();

-- Every rollup afresh from page_views and sessions: for what was loaded before
-- this migration, benchmarks, and a repair should the rules above change. Without
-- the per-object shares (`shares` false), reloading an object would count it twice.
-- Requests answered 404 are not stored row by row: their counts are kept.
CREATE FUNCTION dashboard_rebuild(shares boolean DEFAULT true) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM daily_page_views WHERE dimension <> 'not_found';
    DELETE FROM file_page_views WHERE dimension <> 'not_found';
    TRUNCATE monthly_page_views, visitor_days, file_visitor_days, daily_sessions,
             monthly_sessions, daily_traffic, file_daily_traffic, daily_visitor_sketches,
             monthly_visitor_sketches, stale_visitor_sketches, daily_sessions_changes;
    INSERT INTO daily_page_views
    SELECT d.dimension, (p.ts AT TIME ZONE 'UTC')::date, p.host, d.value, max(d.label),
           count(*), coalesce(sum(p.bytes), 0), coalesce(sum(p.time_taken), 0), count(p.time_taken)
    FROM page_views p CROSS JOIN LATERAL page_view_dimensions(p) AS d
    GROUP BY 1, 2, 3, 4;
    INSERT INTO visitor_days
    SELECT (ts AT TIME ZONE 'UTC')::date, host, visitor_id, count(*)
    FROM page_views WHERE NOT is_bot GROUP BY 1, 2, 3;
    IF shares THEN
        INSERT INTO file_page_views
        SELECT p.file_id, d.dimension, (p.ts AT TIME ZONE 'UTC')::date, p.host, d.value,
               max(d.label), count(*), coalesce(sum(p.bytes), 0),
               coalesce(sum(p.time_taken), 0), count(p.time_taken)
        FROM page_views p CROSS JOIN LATERAL page_view_dimensions(p) AS d
        GROUP BY 1, 2, 3, 4, 5;
        INSERT INTO file_visitor_days
        SELECT file_id, (ts AT TIME ZONE 'UTC')::date, host, visitor_id, count(*)
        FROM page_views WHERE NOT is_bot GROUP BY 1, 2, 3, 4;
    END IF;
    INSERT INTO daily_sessions
    SELECT d.dimension, (s.started_at AT TIME ZONE 'UTC')::date, s.host, d.value, count(*),
           count(*) FILTER (WHERE s.page_views = 1),
           coalesce(sum(extract(epoch FROM s.duration)), 0), sum(s.page_views)
    FROM sessions s
    CROSS JOIN LATERAL session_dimensions(s.started_at, s.landing_page, s.exit_page,
        s.referrer_category, s.referrer_source, s.referrer_host, s.utm_source, s.utm_medium,
        s.utm_campaign, s.device_type, s.browser, s.os, s.country_code) AS d
    GROUP BY 1, 2, 3, 4;
    INSERT INTO monthly_page_views
    SELECT dimension, date_trunc('month', day)::date, host, value, max(label), sum(page_views),
           sum(bytes), sum(time_taken), sum(timed)
    FROM daily_page_views GROUP BY 1, 2, 3, 4;
    INSERT INTO monthly_sessions
    SELECT dimension, date_trunc('month', day)::date, host, value, sum(sessions), sum(bounces),
           sum(duration), sum(page_views)
    FROM daily_sessions GROUP BY 1, 2, 3, 4;
    INSERT INTO daily_traffic
    SELECT (hour AT TIME ZONE 'UTC')::date, host, edge, status_class, kind, sum(requests),
           sum(bytes), sum(hits)
    FROM traffic_hourly GROUP BY 1, 2, 3, 4, 5;
    PERFORM visitor_sketches_update(array_agg(day), array_agg(host))
    FROM (SELECT DISTINCT day, host FROM visitor_days) AS keys;
    IF shares THEN
        INSERT INTO file_daily_traffic
        SELECT file_id, (hour AT TIME ZONE 'UTC')::date, host, edge, status_class, kind,
               sum(requests), sum(bytes), sum(hits)
        FROM file_traffic GROUP BY 1, 2, 3, 4, 5, 6;
    END IF;
END $$;

SELECT dashboard_rebuild();
