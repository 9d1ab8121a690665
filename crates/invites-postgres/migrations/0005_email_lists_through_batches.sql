-- invites-postgres migration 5: a list of one email's invitations goes through that email's
-- batches, and `invitations_by_email` is dropped.
--
-- Every invitation belongs to a batch for the same email (a batch is one email's
-- consolidated invitation), so the batches of an email find all of its invitations. An
-- index on the batches costs one entry per request; the one on the invitations cost one per
-- target, 50 entries of a text key for a 50-target request, about a tenth of that request's
-- write. The rule the lists now rely on is the database's own: the invitation's foreign key
-- names its batch, organization AND email, so no row can claim a batch of another address.
-- The pending invitations of an email (the facts of every bulk request) are read from
-- `invitations_one_pending`, which leads with the email (migration 4).
--
-- Adding the foreign key checks every stored invitation; it fails, and nothing changes, if
-- a row written outside this crate names a batch of another email.
ALTER TABLE {schema}.batches
    ADD CONSTRAINT batches_id_organization_email UNIQUE (id, organization_id, email);

ALTER TABLE {schema}.invitations
    DROP CONSTRAINT invitations_batch_organization_fkey,
    ADD CONSTRAINT invitations_batch_fkey
        FOREIGN KEY (batch_id, organization_id, email)
        REFERENCES {schema}.batches (id, organization_id, email) ON DELETE CASCADE;

CREATE INDEX batches_by_email ON {schema}.batches (organization_id, email);
DROP INDEX {schema}.invitations_by_email;
