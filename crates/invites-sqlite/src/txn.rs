//! Transactions and per-target units: `BEGIN IMMEDIATE` for the operations that open their own
//! transaction, and a `SAVEPOINT` per target.

use crate::error::Error;
use rusqlite::{Connection, Transaction, TransactionBehavior};

pub(crate) fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, Error> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// How the per-target units of one bulk write are kept apart (see [`isolated_units`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Units {
    /// Every unit runs directly in the savepoint [`isolated_units`] opened around the pass;
    /// the first unit that fails stops the pass with [`Error::UnitFailed`].
    Together,
    /// Each unit runs in a savepoint of its own; a unit that fails leaves no trace and the
    /// pass goes on.
    Apart,
}

/// Runs a bulk write whose per-target units must not affect each other: a target that fails
/// is reported alone and leaves nothing behind, the others are kept (docs/contract.md §3).
///
/// A savepoint per unit gives that, but costs on every request: SQLite copies into its
/// sub-journal every page a unit changes that an earlier unit of the transaction changed
/// already (in `email_50`, about six pages of the invitations table and its indexes per
/// target, an eighth of the store's time; see BENCHMARKS.md). Units almost never fail, so the
/// write first runs with [`Units::Together`], all units in one savepoint. If a unit fails,
/// everything the pass wrote is rolled back and the write runs again with [`Units::Apart`],
/// deciding again from the database as it is: the outcome is the one a savepoint per unit
/// would have given from the start.
pub(crate) fn isolated_units<T>(
    conn: &Connection,
    write: impl Fn(&Connection, Units) -> Result<T, Error>,
) -> Result<T, Error> {
    exec(conn, "SAVEPOINT targets")?;
    match write(conn, Units::Together) {
        Ok(value) => {
            exec(conn, "RELEASE targets")?;
            Ok(value)
        }
        Err(e) => {
            if conn.is_autocommit() {
                // SQLite rolled the enclosing transaction back: nothing of the write is left.
                return Err(e);
            }
            exec(conn, "ROLLBACK TO targets")?;
            exec(conn, "RELEASE targets")?;
            match e {
                Error::UnitFailed => write(conn, Units::Apart),
                e => Err(e),
            }
        }
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<(), Error> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Runs one target's unit of work. With [`Units::Apart`], in a savepoint of the open
/// transaction: released on success; rolled back to and released on error, so the unit
/// leaves no trace. With [`Units::Together`], directly: an error stops the pass
/// ([`Error::UnitFailed`]) and [`isolated_units`] runs it again apart. The savepoint
/// statements are prepared once and cached, like every other statement of the batch path.
///
/// The inner result is the unit's own outcome (an `Err` there becomes that target's slot).
/// The outer `Err` means the savepoint machinery itself failed, or SQLite rolled the whole
/// transaction back (it does so on some errors, e.g. disk full): the batch as a whole failed.
pub(crate) fn unit<T>(
    conn: &Connection,
    units: Units,
    work: impl FnOnce(&Connection) -> Result<T, Error>,
) -> Result<Result<T, Error>, Error> {
    if units == Units::Together {
        return match work(conn) {
            Ok(value) => Ok(Ok(value)),
            Err(e) if conn.is_autocommit() => Err(e),
            Err(_) => Err(Error::UnitFailed),
        };
    }
    exec(conn, "SAVEPOINT target")?;
    match work(conn) {
        Ok(value) => {
            exec(conn, "RELEASE target")?;
            Ok(Ok(value))
        }
        Err(e) => {
            if conn.is_autocommit() {
                // The enclosing transaction is gone; nothing of the batch may be reported.
                return Err(e);
            }
            exec(conn, "ROLLBACK TO target")?;
            exec(conn, "RELEASE target")?;
            Ok(Err(e))
        }
    }
}
