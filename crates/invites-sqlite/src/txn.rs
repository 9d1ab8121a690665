//! Transactions and per-target units: `BEGIN IMMEDIATE` for the operations that open their own
//! transaction, and a `SAVEPOINT` per target.

use crate::error::Error;
use rusqlite::{Connection, Transaction, TransactionBehavior};

pub(crate) fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, Error> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// Runs one target's unit of work in a savepoint of the open transaction: released on
/// success; rolled back to and released on error, so the unit leaves no trace. The savepoint
/// statements are prepared once and cached, like every other statement of the batch path.
///
/// The inner result is the unit's own outcome (an `Err` there becomes that target's slot).
/// The outer `Err` means the savepoint machinery itself failed, or SQLite rolled the whole
/// transaction back (it does so on some errors, e.g. disk full): the batch as a whole failed.
pub(crate) fn unit<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, Error>,
) -> Result<Result<T, Error>, Error> {
    let exec = |sql: &str| -> Result<(), Error> {
        conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    };
    exec("SAVEPOINT target")?;
    match work(conn) {
        Ok(value) => {
            exec("RELEASE target")?;
            Ok(Ok(value))
        }
        Err(e) => {
            if conn.is_autocommit() {
                // The enclosing transaction is gone; nothing of the batch may be reported.
                return Err(e);
            }
            exec("ROLLBACK TO target")?;
            exec("RELEASE target")?;
            Ok(Err(e))
        }
    }
}
