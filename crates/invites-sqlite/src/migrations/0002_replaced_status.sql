-- 2: an invitation replaced after it expired is stored as 'replaced', so that 'expired' is
-- only ever derived from the clock (invites_core::rules::view_status). SQLite cannot change a
-- CHECK constraint in place: the table is rebuilt, and its indexes with it.
CREATE TABLE invitations_v2 (
    id              BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    batch_id        BLOB NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    target_kind     TEXT NOT NULL CHECK (target_kind IN ('website', 'group')),
    target_id       BLOB NOT NULL CHECK (length(target_id) = 16),
    email           TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    first_name      TEXT,
    last_name       TEXT,
    status          TEXT NOT NULL
        CHECK (status IN ('pending', 'accepted', 'revoked', 'superseded', 'replaced')),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO invitations_v2
    (id, batch_id, organization_id, target_kind, target_id, email, role, first_name, last_name,
     status, created_at, expires_at)
SELECT id, batch_id, organization_id, target_kind, target_id, email, role, first_name, last_name,
       CASE status WHEN 'expired' THEN 'replaced' ELSE status END, created_at, expires_at
FROM invitations;
DROP TABLE invitations;
ALTER TABLE invitations_v2 RENAME TO invitations;
-- At most one pending invitation per (target, email): the database refuses a second one.
CREATE UNIQUE INDEX invitations_one_pending
    ON invitations (target_kind, target_id, email) WHERE status = 'pending';
CREATE INDEX invitations_by_batch ON invitations (batch_id, created_at, id);
CREATE INDEX invitations_by_organization ON invitations (organization_id, created_at, id);
CREATE INDEX invitations_by_target ON invitations (target_kind, target_id, created_at, id);
CREATE INDEX invitations_by_email ON invitations (email, created_at, id);
