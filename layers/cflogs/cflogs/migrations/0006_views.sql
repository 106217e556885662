-- Views for the common questions, per UTC day and site host, humans only, and a
-- read-only role for BI tools (Grafana, Metabase, Superset): see docs/queries.md.

-- Visitors, page views, sessions and single-page sessions (bounces) per day.
CREATE VIEW daily_visitors AS
WITH p AS (
    SELECT (ts AT TIME ZONE 'UTC')::date AS day, host,
           count(DISTINCT visitor_id) AS visitors, count(*) AS page_views
    FROM page_views WHERE NOT is_bot GROUP BY 1, 2
), s AS (
    SELECT (started_at AT TIME ZONE 'UTC')::date AS day, host,
           count(*) AS sessions, count(*) FILTER (WHERE page_views = 1) AS bounces
    FROM sessions GROUP BY 1, 2
)
SELECT day, host, coalesce(p.visitors, 0) AS visitors, coalesce(p.page_views, 0) AS page_views,
       coalesce(s.sessions, 0) AS sessions, coalesce(s.bounces, 0) AS bounces
FROM p FULL JOIN s USING (day, host);

-- Page views and visitors per page per day.
CREATE VIEW daily_pages AS
SELECT (ts AT TIME ZONE 'UTC')::date AS day, host, path,
       count(*) AS page_views, count(DISTINCT visitor_id) AS visitors
FROM page_views WHERE NOT is_bot GROUP BY 1, 2, 3;

-- Where sessions came from: the referrer category (search, social, ...) and the
-- source (the named source, else the referring host) of their first page view.
CREATE VIEW daily_sources AS
SELECT (started_at AT TIME ZONE 'UTC')::date AS day, host,
       coalesce(referrer_category, 'direct') AS category,
       coalesce(referrer_source, referrer_host) AS source,
       count(*) AS sessions, count(DISTINCT visitor_id) AS visitors,
       sum(page_views) AS page_views, count(*) FILTER (WHERE page_views = 1) AS bounces
FROM sessions GROUP BY 1, 2, 3, 4;

-- Sessions that came with utm_ parameters, per campaign.
CREATE VIEW daily_campaigns AS
SELECT (started_at AT TIME ZONE 'UTC')::date AS day, host,
       utm_source, utm_medium, utm_campaign,
       count(*) AS sessions, count(DISTINCT visitor_id) AS visitors,
       sum(page_views) AS page_views, count(*) FILTER (WHERE page_views = 1) AS bounces
FROM sessions WHERE utm_source IS NOT NULL OR utm_campaign IS NOT NULL
GROUP BY 1, 2, 3, 4, 5;

-- What the reader role may read: the views and the analytics tables, not the
-- ledger or the stitcher's queue. Run again (SELECT cflogs_grant_reader();) after
-- creating the role by hand; a GRANT needs no more than owning the objects.
CREATE FUNCTION cflogs_grant_reader(reader name DEFAULT 'cflogs_reader') RETURNS boolean
    LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = reader) THEN
        RETURN false;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', reader);
    EXECUTE format(
        'GRANT SELECT ON daily_visitors, daily_pages, daily_sources, daily_campaigns,'
        ' page_views, sessions, visitors, traffic_hourly TO %I', reader);
    RETURN true;
END $$;

-- The role is made here only when the migrating user may make roles (a superuser
-- or CREATEROLE, as an RDS master user); an application user without CREATEROLE
-- skips it, and an administrator creates it (docs/queries.md). Roles belong to
-- the whole server, so another database may have made it already.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cflogs_reader')
       AND (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
        BEGIN
            CREATE ROLE cflogs_reader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- made at the same moment by a migration of another database
        END;
    END IF;
    PERFORM cflogs_grant_reader();
END $$;
