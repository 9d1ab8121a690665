-- 6: webhook endpoints and their progress through the event log (issue 19).
-- One row per endpoint: where it goes, how it signs (secrets one per line), which kinds it
-- takes (comma-separated wire names; NULL for every kind), and how far it has got.
CREATE TABLE webhook_endpoints (
    id                BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    organization_id   BLOB    NOT NULL REFERENCES organizations (id),
    url               TEXT    NOT NULL,
    secrets           TEXT    NOT NULL,
    event_types       TEXT,
    delivered_through INTEGER NOT NULL,
    failed_attempts   INTEGER NOT NULL,
    next_attempt_at   INTEGER NOT NULL,
    disabled          TEXT,
    last_error        TEXT
);
-- The claim: enabled endpoints by due time.
CREATE INDEX webhook_endpoints_due ON webhook_endpoints (next_attempt_at, id) WHERE disabled IS NULL;
-- The listing of an organization's endpoints.
CREATE INDEX webhook_endpoints_by_organization ON webhook_endpoints (organization_id, id);
