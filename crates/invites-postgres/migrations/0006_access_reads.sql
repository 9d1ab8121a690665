-- invites-postgres migration 6: indexes for who has access, and for erasing a person
-- (`AccessStore`, issue 18).
--
-- The access lists are keyset pages by id: each source of a page is read as an index range
-- from the cursor, so a page costs the page, never the organization. Where the source is
-- "the websites of a user" or "the websites of an organization", the index must hold the id
-- after the equality column: a btree on (user_id) alone keeps equal keys in heap order, so
-- a page after a cursor could only be found by reading every entry of that user. Three
-- indexes are widened in place (built before the old one is dropped, in the migration's
-- transaction, so nothing is ever unindexed), which costs the writes nothing more:
--
-- - `websites (organization_id, id)`: an organization member's websites, a page at a time.
-- - `website_members (user_id, website_id)`: a user's direct memberships, in website order.
-- - `group_members (user_id, group_id)`: a user's group memberships.
--
-- Erasing a person (a global operation, not scoped to an organization) finds the address's
-- batches and the user's organization memberships:
--
-- - `batches (email, organization_id)` replaces `batches_by_email (organization_id, email)`:
--   the same probe for one organization's list by email (both columns given), and one probe
--   for an address in every organization.
-- - `org_members (user_id)`: the only new index; organization memberships are written by
--   the host's directory, rarely.
--
-- Building them blocks writes to these tables while it runs: on a large database, migrate
-- at a quiet moment.
CREATE INDEX websites_by_organization_id ON {schema}.websites (organization_id, id);
DROP INDEX {schema}.websites_by_organization;
ALTER INDEX {schema}.websites_by_organization_id RENAME TO websites_by_organization;

CREATE INDEX website_members_by_user_website ON {schema}.website_members (user_id, website_id);
DROP INDEX {schema}.website_members_by_user;
ALTER INDEX {schema}.website_members_by_user_website RENAME TO website_members_by_user;

CREATE INDEX group_members_by_user_group ON {schema}.group_members (user_id, group_id);
DROP INDEX {schema}.group_members_by_user;
ALTER INDEX {schema}.group_members_by_user_group RENAME TO group_members_by_user;

CREATE INDEX batches_by_address ON {schema}.batches (email, organization_id);
DROP INDEX {schema}.batches_by_email;
ALTER INDEX {schema}.batches_by_address RENAME TO batches_by_email;

CREATE INDEX org_members_by_user ON {schema}.org_members (user_id);
