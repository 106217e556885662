-- Daily rollups for the dashboard (cflogs.dashboard): per UTC day, host and
-- dimension, so that no view scans page_views or sessions. Each dimension is a
-- (dimension, value) pair; 'total' has the value '' and 'hour' the hour of day
-- ('00'..'23', UTC), which lets the time series and other time zones work from
-- the same rows.

-- The dimensions of one page view. Human ones are NULL for a bot's page view and
-- the other way round; NULL values are not counted. The dashboard filters with the
-- same function, so filtered and unfiltered figures follow the same rules.
CREATE FUNCTION page_view_dimensions(p page_views)
    RETURNS TABLE (dimension text, value text, label text)
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT d.dimension, d.value, d.label FROM (VALUES
        ('total', CASE WHEN NOT p.is_bot THEN '' END, NULL),
        ('hour', CASE WHEN NOT p.is_bot THEN to_char(p.ts AT TIME ZONE 'UTC', 'HH24') END, NULL),
        ('page', CASE WHEN NOT p.is_bot THEN p.path END, NULL),
        ('status', CASE WHEN NOT p.is_bot THEN p.status::text END, NULL),
        ('device', CASE WHEN NOT p.is_bot THEN coalesce(p.device_type, '(unknown)') END, NULL),
        ('browser', CASE WHEN NOT p.is_bot THEN coalesce(p.browser, '(unknown)') END, NULL),
        ('browser_version', CASE WHEN NOT p.is_bot THEN
            coalesce(p.browser, '(unknown)') || coalesce(' ' || split_part(p.browser_version, '.', 1), '') END, NULL),
        ('os', CASE WHEN NOT p.is_bot THEN coalesce(p.os, '(unknown)') END, NULL),
        ('os_version', CASE WHEN NOT p.is_bot THEN
            coalesce(p.os, '(unknown)') || coalesce(' ' || p.os_version, '') END, NULL),
        ('country', CASE WHEN NOT p.is_bot THEN coalesce(p.country_code, '--') END,
            coalesce(p.country, CASE WHEN p.country_code IS NULL THEN '(unknown)' END)),
        ('region', CASE WHEN NOT p.is_bot AND p.region IS NOT NULL THEN
            p.region || ', ' || coalesce(p.country_code, '--') END, NULL),
        ('city', CASE WHEN NOT p.is_bot AND p.city IS NOT NULL THEN
            p.city || ', ' || coalesce(p.country_code, '--') END, NULL),
        ('search', CASE WHEN NOT p.is_bot THEN lower(p.search_terms) END, NULL),
        ('edge', CASE WHEN NOT p.is_bot THEN p.edge_location END, NULL),
        ('bot', CASE WHEN p.is_bot THEN coalesce(p.bot_name, p.browser, '(unknown)') END, NULL),
        ('bot_total', CASE WHEN p.is_bot THEN '' END, NULL)
    ) AS d (dimension, value, label)
    WHERE d.value IS NOT NULL
$$;

-- The dimensions of one session, by its first page view (sources, technology)
-- and its first and last page (entry, exit).
CREATE FUNCTION session_dimensions(
    started_at timestamptz, landing_page text, exit_page text, referrer_category text,
    referrer_source text, referrer_host text, utm_source text, utm_medium text,
    utm_campaign text, device_type text, browser text, os text, country_code text)
    RETURNS TABLE (dimension text, value text)
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT d.dimension, d.value FROM (VALUES
        ('total', ''),
        ('hour', to_char(started_at AT TIME ZONE 'UTC', 'HH24')),
        ('entry', landing_page),
        ('exit', exit_page),
        ('category', coalesce(referrer_category, 'direct')),
        ('source', coalesce(referrer_source, referrer_host, '(direct)')),
        ('campaign', CASE WHEN utm_source IS NOT NULL THEN
            utm_source || ' / ' || coalesce(utm_medium, '-') || ' / ' || coalesce(utm_campaign, '-') END),
        ('device', coalesce(device_type, '(unknown)')),
        ('browser', coalesce(browser, '(unknown)')),
        ('os', coalesce(os, '(unknown)')),
        ('country', coalesce(country_code, '--'))
    ) AS d (dimension, value)
    WHERE d.value IS NOT NULL
$$;

-- Page views by day and dimension value (and, as 'not_found', the requests
-- answered 404 by path: they are no page views, ingest counts them as it reads);
-- file_page_views holds each log object's
-- own share, so that loading an object again replaces exactly what it added.
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
    PRIMARY KEY (dimension, day, host, value)
);
CREATE TABLE file_page_views (
    file_id    bigint NOT NULL,
    dimension  text   NOT NULL,
    day        date   NOT NULL,
    host       text   NOT NULL,
    value      text   NOT NULL,
    label      text,
    page_views bigint NOT NULL,
    bytes      bigint NOT NULL,
    time_taken double precision NOT NULL,
    timed      bigint NOT NULL
);
CREATE INDEX file_page_views_file ON file_page_views (file_id);

-- Each human visitor once per day and host it was seen (with its page views):
-- distinct visitors over any range of days without reading page_views.
CREATE TABLE visitor_days (
    day        date   NOT NULL,
    host       text   NOT NULL,
    visitor_id bigint NOT NULL,
    page_views bigint NOT NULL,
    PRIMARY KEY (day, host, visitor_id)
);
CREATE TABLE file_visitor_days (
    file_id    bigint NOT NULL,
    day        date   NOT NULL,
    host       text   NOT NULL,
    visitor_id bigint NOT NULL,
    page_views bigint NOT NULL
);
CREATE INDEX file_visitor_days_file ON file_visitor_days (file_id);

-- Sessions by the UTC day they started and dimension value. Kept up to date by
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
    PRIMARY KEY (dimension, day, host, value)
);

CREATE FUNCTION daily_sessions_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT -1 AS sign, * FROM old_rows'
        ELSE 'SELECT 1 AS sign, * FROM new_rows UNION ALL SELECT -1 AS sign, * FROM old_rows' END;
    dims text[];
    days date[];
    hosts text[];
    vals text[];
BEGIN
    EXECUTE format($sql$
        WITH delta AS (
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
        ), written AS (
            INSERT INTO daily_sessions AS t
            SELECT * FROM delta
            WHERE sessions <> 0 OR bounces <> 0 OR duration <> 0 OR page_views <> 0
            ORDER BY 1, 2, 3, 4
            ON CONFLICT (dimension, day, host, value) DO UPDATE SET
                sessions = t.sessions + excluded.sessions, bounces = t.bounces + excluded.bounces,
                duration = t.duration + excluded.duration,
                page_views = t.page_views + excluded.page_views
            RETURNING dimension, day, host, value, sessions)
        SELECT array_agg(dimension), array_agg(day), array_agg(host), array_agg(value)
        FROM written WHERE sessions = 0 $sql$, changed) INTO dims, days, hosts, vals;
    -- Rows left without sessions (the stitcher merged or moved them) go.
    IF dims IS NOT NULL THEN
        DELETE FROM daily_sessions t
        USING unnest(dims, days, hosts, vals) AS z (dimension, day, host, value)
        WHERE t.dimension = z.dimension AND t.day = z.day AND t.host = z.host
          AND t.value = z.value AND t.sessions = 0;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_rollup_insert AFTER INSERT ON sessions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION daily_sessions_apply();
CREATE TRIGGER sessions_rollup_delete AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION daily_sessions_apply();
CREATE TRIGGER sessions_rollup_update AFTER UPDATE ON sessions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION daily_sessions_apply();

-- Every rollup afresh from page_views and sessions: for what was loaded before
-- this migration, benchmarks, and a repair should the rules above change. Without
-- the per-object shares (`shares` false), reloading an object would count it twice.
-- Requests answered 404 are not stored row by row: their counts are kept.
CREATE FUNCTION dashboard_rebuild(shares boolean DEFAULT true) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM daily_page_views WHERE dimension <> 'not_found';
    DELETE FROM file_page_views WHERE dimension <> 'not_found';
    TRUNCATE visitor_days, file_visitor_days, daily_sessions;
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
END $$;

SELECT dashboard_rebuild();
