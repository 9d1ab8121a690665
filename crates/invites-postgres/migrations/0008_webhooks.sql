-- invites-postgres migration 8: webhook endpoints and their progress through the event log
-- (`invites_core::endpoints`, contract §12).
--
-- An endpoint belongs to one organization and has handled that organization's events up to
-- `delivered_through` (a position of `events`, migration 7). The delivery loop claims due
-- endpoints as the outbox claims due messages: one `UPDATE … FROM (SELECT … FOR UPDATE SKIP
-- LOCKED)` sets `next_attempt_at` to the claim's lease end, and every record of the turn is
-- fenced by that value (`next_attempt_at = leased_until`).
--
-- - `secrets`: the signing secrets, newest first, as given (the signature needs them).
-- - `event_types`: the kind names (`EventKind::as_str`) it subscribes to; NULL for every kind.
-- - `next_attempt_at`: milliseconds since the epoch, as every time of this schema.
-- - `disabled`: NULL while enabled, else the reason (`DisabledReason::as_str`).
-- - `webhook_endpoints_due`: the claim reads the enabled endpoints in (next_attempt_at, id)
--   order from the start of the index; whether the organization has an event after the
--   endpoint's progress is one probe of the primary key of `events`.
-- - `webhook_endpoints_by_organization`: the listing, by id.
CREATE TABLE {schema}.webhook_endpoints (
    id                uuid    PRIMARY KEY,
    organization_id   uuid    NOT NULL REFERENCES {schema}.organizations (id),
    url               text    NOT NULL,
    secrets           text[]  NOT NULL,
    event_types       text[],
    delivered_through bigint  NOT NULL CHECK (delivered_through >= 0),
    failed_attempts   integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    next_attempt_at   bigint  NOT NULL,
    disabled          text,
    last_error        text
);

CREATE INDEX webhook_endpoints_due ON {schema}.webhook_endpoints (next_attempt_at, id)
    WHERE disabled IS NULL;
CREATE INDEX webhook_endpoints_by_organization ON {schema}.webhook_endpoints (organization_id, id);
