-- 4: indexes for who has access, and taking it back (issue 18).
-- The websites of an organization in id order: a page of an organization member's websites
-- is a range of this index from the cursor. It replaces the by-organization index, which it
-- covers.
CREATE INDEX websites_by_organization_id ON websites (organization_id, id);
DROP INDEX websites_by_organization;
-- The erasure of a person finds every row of the user and of the address by index, never by
-- scanning a table (only the idempotency responses are searched as text).
CREATE INDEX org_members_by_user ON org_members (user_id);
CREATE INDEX batches_by_email ON batches (email);
CREATE INDEX outbox_by_recipient ON outbox (recipient);
