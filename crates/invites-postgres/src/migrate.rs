//! The versioned schema migrations, applied once per database and schema under an advisory
//! lock.

use crate::PgStore;
use crate::error::Error;

/// The migrations, in order: migration `i` (0-based) takes the schema from version `i` to
/// `i + 1`. Never edit a released one: append a new file.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_purge_indexes.sql"),
    include_str!("../migrations/0003_batch_scoped_keys.sql"),
    include_str!("../migrations/0004_pending_by_email.sql"),
    include_str!("../migrations/0005_email_lists_through_batches.sql"),
];

/// Key of the advisory lock that serialises migrations of one schema: a fixed class plus a
/// hash of the schema name (FNV-1a, stable across builds and platforms).
fn lock_key(schema: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "invites-postgres migrations ".bytes().chain(schema.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Brings the schema up to the newest version: in ONE transaction, holding the schema's
/// advisory lock, creates the schema and the migrations table if missing, reads the applied
/// version, and applies (and records) every newer migration. Servers starting together wait
/// on the lock; the second one finds everything applied.
pub(crate) async fn migrate(store: &PgStore) -> Result<(), Error> {
    let known = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&lock_key(&store.options.schema)],
    )
    .await?;
    tx.batch_execute(&store.q("CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.invites_schema_migrations (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"))
        .await?;
    let found: i32 = tx
        .query_one(
            &store.q("SELECT COALESCE(max(version), 0) FROM {schema}.invites_schema_migrations"),
            &[],
        )
        .await?
        .try_get(0)?;
    if found > known {
        return Err(Error::NewerSchema { found, known });
    }
    for (version, sql) in (1..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(found).unwrap_or(0))
    {
        tx.batch_execute(&store.q(sql)).await?;
        tx.execute(
            &store.q("INSERT INTO {schema}.invites_schema_migrations (version) VALUES ($1)"),
            &[&version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_differ_per_schema_and_are_stable() {
        assert_ne!(lock_key("public"), lock_key("invites"));
        assert_eq!(lock_key("public"), lock_key("public"));
    }

    #[test]
    fn migrations_use_the_schema_placeholder_for_every_table() {
        for sql in MIGRATIONS {
            for line in sql.lines().filter(|l| !l.trim_start().starts_with("--")) {
                let index = line.contains("INDEX ");
                for word in ["CREATE TABLE ", "REFERENCES ", " ON "] {
                    if word == " ON " && !index {
                        continue;
                    }
                    if let Some(i) = line.find(word) {
                        let rest = &line[i + word.len()..];
                        assert!(rest.starts_with("{schema}."), "unqualified: {line}");
                    }
                }
            }
        }
    }
}
