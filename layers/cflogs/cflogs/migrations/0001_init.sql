-- Ledger: one row per S3 object seen.
CREATE TABLE log_files (
    file_id        bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    bucket         text        NOT NULL,
    key            text        NOT NULL,
    etag           text,
    size           bigint,
    status         text        NOT NULL DEFAULT 'processing'
                   CHECK (status IN ('queued', 'processing', 'done', 'failed')),
    reason         text,
    attempts       integer     NOT NULL DEFAULT 0,
    lines          integer,
    page_views     integer,
    bot_page_views integer,
    assets         integer,
    rejected       integer,
    first_ts       timestamptz,  -- first and last page view (bots included)
    last_ts        timestamptz,
    seconds        real,
    processed_at   timestamptz,
    PRIMARY KEY (bucket, key)
);
CREATE INDEX log_files_status ON log_files (status);

-- Page views, humans and bots; replaced per object; one partition per month.
CREATE TABLE page_views (
    file_id           bigint      NOT NULL,
    request_id        text        NOT NULL,
    ts                timestamptz NOT NULL,
    visitor_id        bigint      NOT NULL,
    is_bot            boolean     NOT NULL,
    bot_name          text,
    host              text        NOT NULL,
    path              text        NOT NULL,
    query             text,
    status            smallint    NOT NULL,
    bytes             bigint,
    time_taken        real,
    edge_location     text,
    device_type       text,
    device_brand      text,
    device_model      text,
    browser           text,
    browser_version   text,
    os                text,
    os_version        text,
    country_code      text,
    country           text,
    region            text,
    city              text,
    referrer_host     text,
    referrer_path     text,
    referrer_category text,
    referrer_source   text,
    search_terms      text,
    utm_source        text,
    utm_medium        text,
    utm_campaign      text,
    utm_term          text,
    utm_content       text,
    click_id          text
) PARTITION BY RANGE (ts);
CREATE INDEX page_views_file ON page_views (file_id);
CREATE INDEX page_views_visitor_ts ON page_views (visitor_id, ts) WHERE NOT is_bot;

-- Hourly traffic of every request. file_traffic holds each object's own share so
-- that replacing an object subtracts exactly what it added.
CREATE TABLE traffic_hourly (
    hour         timestamptz NOT NULL,
    host         text        NOT NULL,
    edge         text        NOT NULL,
    status_class text        NOT NULL,
    kind         text        NOT NULL,
    requests     bigint      NOT NULL,
    bytes        bigint      NOT NULL,
    hits         bigint      NOT NULL,  -- served from the edge cache (Hit, RefreshHit)
    PRIMARY KEY (hour, host, edge, status_class, kind)
);
CREATE TABLE file_traffic (
    file_id      bigint      NOT NULL,
    load_id      bigint      NOT NULL,
    hour         timestamptz NOT NULL,
    host         text        NOT NULL,
    edge         text        NOT NULL,
    status_class text        NOT NULL,
    kind         text        NOT NULL,
    requests     bigint      NOT NULL,
    bytes        bigint      NOT NULL,
    hits         bigint      NOT NULL
);
CREATE INDEX file_traffic_file ON file_traffic (file_id);

-- Visitors whose page views changed, with the time range that changed; the
-- stitcher consumes it.
CREATE TABLE dirty_visitors (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    visitor_id bigint      NOT NULL,
    first_ts   timestamptz NOT NULL,
    last_ts    timestamptz NOT NULL,
    queued_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dirty_visitors_visitor ON dirty_visitors (visitor_id);
