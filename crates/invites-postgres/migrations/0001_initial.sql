-- invites-postgres migration 1: the initial schema.
--
-- `{schema}` is replaced by the configured schema (a validated, quoted identifier) before
-- this runs. Conventions: ids are `uuid`; timestamps are `bigint` milliseconds since the Unix
-- epoch (the core's `Timestamp`, compared exactly); emails are `text` already normalised by
-- the core's `Email`; enums are `text` tags with a CHECK. Every uniqueness rule of the store
-- contract is a primary key, a UNIQUE constraint or a partial unique index, so the database
-- itself refuses duplicates whatever the number of app servers.

CREATE TABLE {schema}.organizations (
    id   uuid PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE {schema}.websites (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES {schema}.organizations (id),
    name            text NOT NULL,
    url             text NOT NULL
);
CREATE INDEX websites_by_organization ON {schema}.websites (organization_id);

CREATE TABLE {schema}.groups (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES {schema}.organizations (id),
    name            text NOT NULL
);
CREATE INDEX groups_by_organization ON {schema}.groups (organization_id);

CREATE TABLE {schema}.group_websites (
    group_id   uuid NOT NULL REFERENCES {schema}.groups (id) ON DELETE CASCADE,
    website_id uuid NOT NULL REFERENCES {schema}.websites (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, website_id)
);
CREATE INDEX group_websites_by_website ON {schema}.group_websites (website_id);

-- One user per normalised email.
CREATE TABLE {schema}.users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL CONSTRAINT users_one_per_email UNIQUE,
    email_verified boolean NOT NULL,
    first_name     text,
    last_name      text
);

CREATE TABLE {schema}.org_members (
    organization_id uuid NOT NULL REFERENCES {schema}.organizations (id),
    user_id         uuid NOT NULL REFERENCES {schema}.users (id),
    role            text NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    PRIMARY KEY (organization_id, user_id)
);

-- One membership per (target, user): the primary keys.
CREATE TABLE {schema}.website_members (
    website_id uuid NOT NULL REFERENCES {schema}.websites (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES {schema}.users (id),
    role       text NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at bigint NOT NULL,
    PRIMARY KEY (website_id, user_id)
);
CREATE INDEX website_members_by_user ON {schema}.website_members (user_id);

CREATE TABLE {schema}.group_members (
    group_id   uuid NOT NULL REFERENCES {schema}.groups (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES {schema}.users (id),
    role       text NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at bigint NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_by_user ON {schema}.group_members (user_id);

-- Unique token hash: a token opens at most one batch.
CREATE TABLE {schema}.batches (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES {schema}.organizations (id),
    email           text NOT NULL,
    token_hash      bytea NOT NULL CONSTRAINT batches_one_per_token UNIQUE
                    CHECK (length(token_hash) = 32),
    created_at      bigint NOT NULL,
    last_sent_at    bigint NOT NULL
);

CREATE TABLE {schema}.invitations (
    id              uuid PRIMARY KEY,
    batch_id        uuid NOT NULL REFERENCES {schema}.batches (id) ON DELETE CASCADE,
    organization_id uuid NOT NULL REFERENCES {schema}.organizations (id),
    target_kind     text NOT NULL CHECK (target_kind IN ('website', 'group')),
    target_id       uuid NOT NULL,
    email           text NOT NULL,
    role            text NOT NULL CHECK (role IN ('admin', 'viewer')),
    first_name      text,
    last_name       text,
    -- The stored status; `expired` is derived from the clock, never stored.
    status          text NOT NULL
        CHECK (status IN ('pending', 'accepted', 'revoked', 'superseded', 'replaced')),
    created_at      bigint NOT NULL,
    expires_at      bigint NOT NULL
);
-- One live invitation per (target, email): at most one stored-pending row, live or expired
-- (an expired one is marked `replaced` before its successor is inserted).
CREATE UNIQUE INDEX invitations_one_pending
    ON {schema}.invitations (target_kind, target_id, email) WHERE status = 'pending';
CREATE INDEX invitations_by_batch ON {schema}.invitations (batch_id, created_at, id);
CREATE INDEX invitations_by_organization ON {schema}.invitations (organization_id, created_at, id);
CREATE INDEX invitations_by_target ON {schema}.invitations (target_kind, target_id, created_at, id);
CREATE INDEX invitations_by_email ON {schema}.invitations (email, created_at, id);

CREATE TABLE {schema}.outbox (
    id              uuid PRIMARY KEY,
    batch_id        uuid NOT NULL REFERENCES {schema}.batches (id) ON DELETE CASCADE,
    organization_id uuid NOT NULL REFERENCES {schema}.organizations (id),
    recipient       text NOT NULL,
    accept_url      text,
    status          text NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'cancelled')),
    attempts        integer NOT NULL CHECK (attempts >= 0),
    next_attempt_at bigint NOT NULL,
    created_at      bigint NOT NULL,
    last_error      text
);
-- The deliverers' claim: queued messages due now, oldest first.
CREATE INDEX outbox_due ON {schema}.outbox (next_attempt_at, created_at, id) WHERE status = 'queued';
CREATE INDEX outbox_by_batch ON {schema}.outbox (batch_id, created_at, id);

CREATE TABLE {schema}.idempotency (
    organization_id uuid NOT NULL,
    key_id          uuid NOT NULL,
    key             text NOT NULL,
    fingerprint     bytea NOT NULL CHECK (length(fingerprint) = 32),
    response        text,
    created_at      bigint NOT NULL,
    PRIMARY KEY (organization_id, key_id, key)
);
