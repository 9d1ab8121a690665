-- 3: indexes for the purge (`invites_core::InviteService::purge_expired`), which deletes the
-- oldest rows first by these columns, a bounded number per transaction.
CREATE INDEX idempotency_by_created ON idempotency (created_at);
CREATE INDEX outbox_by_next_attempt ON outbox (next_attempt_at, id);
CREATE INDEX batches_by_last_sent ON batches (last_sent_at, id);
