//! A bulk write whose `COMMIT` was sent but never answered (the connection was lost: a
//! network cut, a proxy or the server going away). The transaction may have committed or
//! not, and the response must say which (docs/contract.md §4: a target reported `added`/`invited` is
//! stored, a failed one left no trace). The store knows the rows it wrote, all with ids or
//! values of this request alone, so it reads them back on another connection:
//!
//! 1. In a new transaction, take the email's advisory lock (the one the write held): it is
//!    granted once the old transaction has ended, committed or rolled back, on the server's
//!    side (a server notices a closed connection and rolls back). At most
//!    [`CHECK_LOCK_TIMEOUT`]: a connection the server still thinks is alive keeps the lock.
//! 2. Count the rows: all of them stored means it committed (the answer the write would
//!    have given stands); none means it did not (the call fails with the commit's error, and
//!    nothing of it is stored).
//! 3. Anything else (the check fails, times out, or finds some rows but not all, which a
//!    single transaction cannot leave) is [`Error::CommitUnknown`]: the call fails, the core
//!    reports `internal_error`, and the error says the writes may be stored.

use crate::PgStore;
use crate::error::Error;
use crate::sql::LOCK_EMAIL;
use invites_core::{BatchId, Email, Role, Timestamp, UserId};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// How long the check waits for the old transaction's email lock.
pub(crate) const CHECK_LOCK_TIMEOUT: &str = "5s";

/// How often the check runs at most when it cannot reach the server.
const CHECK_ATTEMPTS: u32 = 3;

/// What a write transaction's `COMMIT` came to.
pub(crate) enum Commit<T> {
    /// PostgreSQL answered: `T` is what the call returns.
    Answered(T),
    /// The `COMMIT` was sent and never answered: `value` is the answer if it committed,
    /// `error` the answer if it did not, and `written` tells which.
    Unanswered {
        value: T,
        written: Written,
        error: Error,
    },
}

/// The rows a bulk write stored if it committed, all decided by this request: the email it
/// locked, and the rows to look for.
pub(crate) struct Written {
    email: String,
    rows: Rows,
}

enum Rows {
    /// Direct mode: the memberships of `user` on these targets with this role and
    /// `created_at`, and the user itself if the request created it (its id is the request's).
    Members {
        user: Uuid,
        user_created: bool,
        role: &'static str,
        created_at: i64,
        websites: Vec<Uuid>,
        groups: Vec<Uuid>,
    },
    /// Email mode: the batch (its id is the request's; its outbox message is written in the
    /// same transaction) and the invitations (ids of the request).
    Invitations { batch: Uuid, invitations: Vec<Uuid> },
}

impl Written {
    /// Direct mode's rows: the memberships on `websites` and `groups`.
    pub(crate) fn members(
        email: &Email,
        user: UserId,
        user_created: bool,
        role: Role,
        now: Timestamp,
        websites: Vec<Uuid>,
        groups: Vec<Uuid>,
    ) -> Written {
        Written {
            email: email.as_str().to_owned(),
            rows: Rows::Members {
                user: user.0,
                user_created,
                role: role.as_str(),
                created_at: now.as_millis(),
                websites,
                groups,
            },
        }
    }

    /// Email mode's rows: the batch and these invitations.
    pub(crate) fn invitations(email: &Email, batch: BatchId, invitations: Vec<Uuid>) -> Written {
        Written {
            email: email.as_str().to_owned(),
            rows: Rows::Invitations {
                batch: batch.0,
                invitations,
            },
        }
    }

    /// How many rows there are if it committed.
    fn expected(&self) -> i64 {
        let n = match &self.rows {
            Rows::Members {
                user_created,
                websites,
                groups,
                ..
            } => websites.len() + groups.len() + usize::from(*user_created),
            Rows::Invitations { invitations, .. } => 1 + invitations.len(),
        };
        i64::try_from(n).unwrap_or(i64::MAX)
    }

    /// Whether the write wrote nothing (then it does not matter whether it committed).
    fn is_empty(&self) -> bool {
        match &self.rows {
            Rows::Members {
                websites, groups, ..
            } => websites.is_empty() && groups.is_empty(),
            Rows::Invitations { invitations, .. } => invitations.is_empty(),
        }
    }
}

const COUNT_MEMBERS: &str = "\
SELECT (SELECT count(*) FROM {schema}.website_members
        WHERE website_id = ANY($2) AND user_id = $1 AND role = $3 AND created_at = $4)
     + (SELECT count(*) FROM {schema}.group_members
        WHERE group_id = ANY($5) AND user_id = $1 AND role = $3 AND created_at = $4)
     + (SELECT count(*) FROM {schema}.users WHERE id = $1 AND $6)";

const COUNT_INVITATIONS: &str = "\
SELECT (SELECT count(*) FROM {schema}.batches WHERE id = $1)
     + (SELECT count(*) FROM {schema}.invitations WHERE id = ANY($2))";

/// The answer to give for `commit`: its value if it committed, its error if it did not,
/// [`Error::CommitUnknown`] if that cannot be told.
pub(crate) async fn settle<T>(store: &PgStore, commit: Commit<T>) -> Result<T, Error> {
    let (value, written, error) = match commit {
        Commit::Answered(value) => return Ok(value),
        Commit::Unanswered {
            value,
            written,
            error,
        } => (value, written, error),
    };
    if written.is_empty() {
        return Ok(value);
    }
    let mut attempt = 1;
    let found = loop {
        match count(store, &written).await {
            Ok(found) => break found,
            Err(e) if e.is_transient() && attempt < CHECK_ATTEMPTS => {
                crate::backoff(attempt).await;
                attempt += 1;
            }
            Err(e) => {
                tracing::warn!("a COMMIT was not answered, and checking its rows failed");
                return Err(Error::CommitUnknown {
                    why: "checking what it wrote failed",
                    source: e.sanitized(),
                });
            }
        }
    };
    let expected = written.expected();
    if found == expected {
        tracing::warn!(
            rows = found,
            "a COMMIT was not answered; its rows are stored"
        );
        Ok(value)
    } else if found == 0 {
        tracing::warn!("a COMMIT was not answered; none of its rows are stored");
        Err(error)
    } else {
        tracing::warn!(
            found,
            expected,
            "a COMMIT was not answered; only some of its rows are stored"
        );
        Err(Error::CommitUnknown {
            why: "only some of the rows it wrote are stored",
            source: error.sanitized(),
        })
    }
}

/// Waits for the write's email lock, then counts its rows that are stored.
async fn count(store: &PgStore, written: &Written) -> Result<i64, Error> {
    let mut client = store.client().await?;
    let tx = client.build_transaction().read_only(true).start().await?;
    tx.batch_execute(&format!("SET LOCAL lock_timeout = '{CHECK_LOCK_TIMEOUT}'"))
        .await?;
    tx.execute(LOCK_EMAIL, &[&written.email]).await?;
    let row = match &written.rows {
        Rows::Members {
            user,
            user_created,
            role,
            created_at,
            websites,
            groups,
        } => {
            let params: [&(dyn ToSql + Sync); 6] =
                [user, websites, role, created_at, groups, user_created];
            tx.query_one(&store.q(COUNT_MEMBERS), &params).await?
        }
        Rows::Invitations { batch, invitations } => {
            tx.query_one(&store.q(COUNT_INVITATIONS), &[batch, invitations])
                .await?
        }
    };
    let found: i64 = row.try_get(0)?;
    tx.commit().await?;
    Ok(found)
}
