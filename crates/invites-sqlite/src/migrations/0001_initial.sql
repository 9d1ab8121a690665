-- 1: the initial schema.
CREATE TABLE organizations (
    id   BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    name TEXT NOT NULL
);

CREATE TABLE websites (
    id              BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    name            TEXT NOT NULL,
    url             TEXT NOT NULL
);
CREATE INDEX websites_by_organization ON websites (organization_id);

CREATE TABLE groups (
    id              BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    name            TEXT NOT NULL
);
CREATE INDEX groups_by_organization ON groups (organization_id);

CREATE TABLE group_websites (
    group_id   BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    website_id BLOB NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, website_id)
) WITHOUT ROWID;
CREATE INDEX group_websites_by_website ON group_websites (website_id);

CREATE TABLE users (
    id             BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    email          TEXT NOT NULL UNIQUE,
    email_verified INTEGER NOT NULL CHECK (email_verified IN (0, 1)),
    first_name     TEXT,
    last_name      TEXT
);

CREATE TABLE org_members (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    user_id         BLOB NOT NULL REFERENCES users (id),
    role            TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    PRIMARY KEY (organization_id, user_id)
) WITHOUT ROWID;

CREATE TABLE website_members (
    website_id BLOB NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id),
    role       TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (website_id, user_id)
) WITHOUT ROWID;
CREATE INDEX website_members_by_user ON website_members (user_id);

CREATE TABLE group_members (
    group_id   BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id),
    role       TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX group_members_by_user ON group_members (user_id);

CREATE TABLE batches (
    id              BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    email           TEXT NOT NULL,
    token_hash      BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at      INTEGER NOT NULL,
    last_sent_at    INTEGER NOT NULL
);

CREATE TABLE invitations (
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
        CHECK (status IN ('pending', 'accepted', 'revoked', 'expired', 'superseded')),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
) WITHOUT ROWID;
-- At most one pending invitation per (target, email): the database refuses a second one.
CREATE UNIQUE INDEX invitations_one_pending
    ON invitations (target_kind, target_id, email) WHERE status = 'pending';
CREATE INDEX invitations_by_batch ON invitations (batch_id, created_at, id);
CREATE INDEX invitations_by_organization ON invitations (organization_id, created_at, id);
CREATE INDEX invitations_by_target ON invitations (target_kind, target_id, created_at, id);
CREATE INDEX invitations_by_email ON invitations (email, created_at, id);

CREATE TABLE outbox (
    id              BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    batch_id        BLOB NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    -- The batch's organization (immutable, copied from the batch on insert).
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    recipient       TEXT NOT NULL,
    accept_url      TEXT,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'cancelled')),
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    last_error      TEXT
);
-- The deliverer's query: queued messages due now, oldest first.
CREATE INDEX outbox_due ON outbox (next_attempt_at, created_at, id) WHERE status = 'queued';
CREATE INDEX outbox_by_batch ON outbox (batch_id, created_at, id);

CREATE TABLE idempotency (
    organization_id BLOB NOT NULL,
    key_id          BLOB NOT NULL,
    key             TEXT NOT NULL,
    fingerprint     BLOB NOT NULL CHECK (length(fingerprint) = 32),
    response        TEXT,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (organization_id, key_id, key)
) WITHOUT ROWID;
