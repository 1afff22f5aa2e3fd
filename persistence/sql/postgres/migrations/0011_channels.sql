-- Channels (issue 14): where approvers are told an approval waits for them (email, a signed
-- webhook, Slack, Teams), configured once and named by approvals. Their notifications ride the
-- callback outbox: a delivery with a channel is sent by that channel's sender.
CREATE TABLE channels (
    name       TEXT    PRIMARY KEY,
    project_id TEXT,
    kind       TEXT    NOT NULL,
    config     TEXT    NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

ALTER TABLE deliveries ADD COLUMN channel TEXT;
