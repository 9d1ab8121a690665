-- 5: the event log (issue 19, `invites_core::events`).
-- The last position given out per organization. It lives on the organization's row so that
-- purging events never lets a position be given out twice.
ALTER TABLE organizations ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;
-- One row per store call that wrote events: positions first_position..=last_position of the
-- organization's log, the call's time and API key, and its events in `data` (the binary
-- form of `event_codec`: a version byte, the distinct ids, then per event its kind, which
-- fields it has, an index into the ids per id field and its role). Ids, roles and kinds only
-- (never an address or a name). One row per call rather than per event: a 50-target request
-- writes one row, not 51 with three B-tree entries each. A rowid table: a group of a bulk
-- call is a couple of KiB, too large a row for a WITHOUT ROWID B-tree. No foreign keys: an
-- event outlives what it names, and organizations are never deleted.
CREATE TABLE event_groups (
    organization_id BLOB NOT NULL,
    last_position   INTEGER NOT NULL,
    first_position  INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    actor           BLOB,
    -- The user the group's events name when they name exactly one (a bulk or accept call:
    -- the invitee; a directory call), found by `event_groups_by_user`; NULL when they name
    -- none, or two or more (then in `event_users`). One more entry in an index the row
    -- already pays for, rather than a row of another table and its index.
    user_id         BLOB,
    data            BLOB NOT NULL,
    -- A page after position p is the range last_position > p of this index.
    UNIQUE (organization_id, last_position)
);
-- The purge deletes the oldest groups first (ties by organization and position), a bounded
-- number of events per transaction.
CREATE INDEX event_groups_by_at ON event_groups (at, organization_id, last_position);
-- The groups naming one user: the erasure of a person finds them without scanning the log.
CREATE INDEX event_groups_by_user ON event_groups (user_id) WHERE user_id IS NOT NULL;
-- The users named by a group whose events name two or more (rare: a call names at most
-- its invitee or the member it changes), once per user and group: the erasure finds those groups here, and the purge
-- deletes a group's rows with it.
CREATE TABLE event_users (
    user_id         BLOB NOT NULL,
    organization_id BLOB NOT NULL,
    last_position   INTEGER NOT NULL,
    PRIMARY KEY (user_id, organization_id, last_position)
) WITHOUT ROWID;
CREATE INDEX event_users_by_group ON event_users (organization_id, last_position);
