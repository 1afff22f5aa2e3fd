-- Delivery operations (issue 17): each endpoint's state and circuit breaker. An endpoint is a
-- callback URL's origin (scheme://host:port), or "channel:<name>" for a channel's
-- notifications; every delivery names its endpoint ('' for rows written before this
-- migration, filled in by the dispatcher before it claims anything).
CREATE TABLE endpoints (
    endpoint             TEXT    PRIMARY KEY,
    -- closed (deliveries flow), open (paused until open_until), half_open (one probe in flight)
    state                TEXT    NOT NULL DEFAULT 'closed',
    consecutive_failures BIGINT  NOT NULL DEFAULT 0,
    last_success_at      BIGINT,
    last_failure_at      BIGINT,
    -- open: the end of the cool-down; half_open: the end of the probe's lease
    open_until           BIGINT,
    -- when the breaker opened: the time open is not counted towards a delivery's maximum age
    opened_at            BIGINT
);

ALTER TABLE deliveries ADD COLUMN endpoint TEXT NOT NULL DEFAULT '';
UPDATE deliveries SET endpoint = 'channel:' || channel WHERE channel IS NOT NULL;
CREATE INDEX deliveries_endpoint ON deliveries (endpoint, status, next_attempt_at);
