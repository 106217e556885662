-- Sessions and visitors, rebuilt by cflogs.sessions.stitch from human page views.
-- Both are derived data: at any time they equal a batch sessionization of the page
-- views, except for the visitors still waiting in dirty_visitors.

-- A session's id: its visitor id, then the microseconds since 1970 of its first
-- page view, 16 hex digits each. It stays the same while that page view does, and
-- sorts by visitor and start, so the primary key also finds a visitor's sessions.
-- (STABLE, not IMMUTABLE, so that it is inlined into the queries that use it.)
CREATE FUNCTION session_id_for(visitor_id bigint, started_at timestamptz) RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT encode(int8send(visitor_id) || int8send(
              (extract(epoch FROM least(started_at, '9999-12-31')) * 1000000)::bigint), 'hex')::uuid $$;

-- One row per human session.
CREATE TABLE sessions (
    session_id        uuid        PRIMARY KEY,
    visitor_id        bigint      NOT NULL,
    started_at        timestamptz NOT NULL,
    ended_at          timestamptz NOT NULL,
    duration          interval    NOT NULL,
    page_views        integer     NOT NULL,
    host              text        NOT NULL,
    landing_page      text        NOT NULL,
    exit_page         text        NOT NULL,
    -- How the session came in: from its first page view.
    referrer_host     text,
    referrer_category text,
    referrer_source   text,
    utm_source        text,
    utm_medium        text,
    utm_campaign      text,
    device_type       text,
    browser           text,
    os                text,
    country_code      text,
    -- The last page view is less than the timeout before the newest page view
    -- stored, so a page view still to come could extend the session.
    can_grow          boolean     NOT NULL
);
-- The open sessions: the ones to close when the newest page view moves on.
CREATE INDEX sessions_open ON sessions (ended_at) WHERE can_grow;

-- One row per human visitor: the aggregate of their sessions.
CREATE TABLE visitors (
    visitor_id bigint      PRIMARY KEY,
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    sessions   integer     NOT NULL,
    page_views integer     NOT NULL
);
-- Recent visitors; also leads to the sessions that reopen when a reload moves the
-- newest page view back.
CREATE INDEX visitors_last_seen ON visitors (last_seen);

-- The newest page view stored is max(log_files.last_ts): one index probe.
CREATE INDEX log_files_last_ts ON log_files (last_ts);
