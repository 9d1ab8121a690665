-- invites-postgres migration 7: the event log (issue 19, `invites_core::events`).
--
-- Each organization numbers its events 1, 2, 3, ... with no gaps, in commit order. The next
-- positions come from `organizations.event_seq`, the last position given out, which a write
-- increments under the organization row's lock as the LAST statement before its COMMIT
-- (`UPDATE ... SET event_seq = event_seq + n ... RETURNING`, then the rows at the positions
-- it returns). A transaction waiting for that lock sees the holder's committed value once it
-- is granted (READ COMMITTED re-reads the row), so position p + 1 is taken only after the
-- transaction that took p has committed (or rolled back, giving p back), and a reader that
-- reads `position > cursor` never skips one. The counter is a non-key column: the lock is
-- `FOR NO KEY UPDATE`, which does not block the foreign key checks of other writes in the
-- organization. It is kept when events are purged, so positions are never reused.
--
-- An event holds ids only (no address, name or token). Its ids are not foreign keys: an
-- event outlives what it names (a deleted website, an erased user, a purged batch). Its
-- rows are inserted only from the organization row's `RETURNING`, so the organization exists.
--
-- - `events_by_at`: the purge deletes the oldest events first, a bounded number at a time
--   (ordered as the in-memory reference: by time, organization, position).
-- - `events_by_user`: an erasure clears the erased user's id from every event naming it.
ALTER TABLE {schema}.organizations ADD COLUMN event_seq bigint NOT NULL DEFAULT 0;

CREATE TABLE {schema}.events (
    organization_id uuid   NOT NULL,
    position        bigint NOT NULL CHECK (position > 0),
    kind            text   NOT NULL,
    at              bigint NOT NULL,
    actor           uuid,
    target_kind     text CHECK (target_kind IN ('website', 'group')),
    target_id       uuid,
    user_id         uuid,
    invitation_id   uuid,
    batch_id        uuid,
    message_id      uuid,
    group_id        uuid,
    role            text,
    PRIMARY KEY (organization_id, position),
    CHECK ((target_kind IS NULL) = (target_id IS NULL))
);

CREATE INDEX events_by_at ON {schema}.events (at, organization_id, position);
CREATE INDEX events_by_user ON {schema}.events (user_id) WHERE user_id IS NOT NULL;
