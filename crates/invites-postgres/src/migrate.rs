//! The versioned schema migrations, applied once per database and schema under an advisory
//! lock.

use crate::error::Error;
use crate::{ConnectError, Migrated, SchemaMismatch};
use deadpool_postgres::Object;
use invites_core::StoreError;

/// The migrations, in order: migration `i` (0-based) takes the schema from version `i` to
/// `i + 1`. Never edit a released one: append a new file.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_purge_indexes.sql"),
    include_str!("../migrations/0003_batch_scoped_keys.sql"),
    include_str!("../migrations/0004_pending_by_email.sql"),
    include_str!("../migrations/0005_email_lists_through_batches.sql"),
    include_str!("../migrations/0006_access_reads.sql"),
    include_str!("../migrations/0007_events.sql"),
    include_str!("../migrations/0008_webhooks.sql"),
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

/// The version of `schema` as recorded in its migrations table (the number of migrations
/// applied), 0 when the table does not exist. Issues no DDL and takes no lock: it needs only
/// USAGE on the schema and SELECT on `invites_schema_migrations`.
async fn applied_version(client: &Object, schema: &str) -> Result<u32, Error> {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                            WHERE n.nspname = $1 AND c.relname = 'invites_schema_migrations')",
            &[&schema],
        )
        .await?
        .try_get(0)?;
    if !exists {
        return Ok(0);
    }
    let found: i32 = client
        .query_one(
            &qualify(
                "SELECT COALESCE(max(version), 0) FROM {schema}.invites_schema_migrations",
                schema,
            ),
            &[],
        )
        .await?
        .try_get(0)?;
    Ok(u32::try_from(found).unwrap_or(0))
}

/// `sql` with its `{schema}` placeholders replaced by the quoted `schema`.
fn qualify(sql: &str, schema: &str) -> String {
    sql.replace("{schema}", &format!("\"{schema}\""))
}

/// The number of migrations this build knows: the schema version it reads and writes.
fn known() -> u32 {
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}

/// Checks that `schema` is at exactly the version this build knows, without any DDL.
pub(crate) async fn verify(client: &Object, schema: &str) -> Result<(), ConnectError> {
    let found = applied_version(client, schema)
        .await
        .map_err(StoreError::from)?;
    if found == known() {
        Ok(())
    } else {
        Err(ConnectError::Schema(SchemaMismatch {
            schema: schema.to_owned(),
            found,
            expected: known(),
        }))
    }
}

/// Brings `schema` up to the newest version. A schema already there is only read (no DDL, no
/// lock), so a role without CREATE privileges passes once the owner has migrated. Otherwise,
/// in ONE transaction holding the schema's advisory lock: creates the schema and the
/// migrations table if missing, reads the applied version again, and applies (and records)
/// every newer migration. Servers starting together wait on the lock; the second one finds
/// everything applied.
pub(crate) async fn migrate(client: &mut Object, schema: &str) -> Result<Migrated, ConnectError> {
    let newer = |found| {
        ConnectError::Schema(SchemaMismatch {
            schema: schema.to_owned(),
            found,
            expected: known(),
        })
    };
    let current = applied_version(client, schema)
        .await
        .map_err(StoreError::from)?;
    if current == known() {
        return Ok(Migrated {
            from: current,
            to: current,
        });
    }
    if current > known() {
        return Err(newer(current));
    }
    let from = locked_migrate(client, schema)
        .await
        .map_err(StoreError::from)?;
    if from > known() {
        return Err(newer(from));
    }
    Ok(Migrated { from, to: known() })
}

/// The migration itself, under the lock; returns the version found under the lock (and does
/// nothing when it is newer than this build).
async fn locked_migrate(client: &mut Object, schema: &str) -> Result<u32, Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(schema)])
        .await?;
    tx.batch_execute(&qualify(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.invites_schema_migrations (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
        schema,
    ))
    .await?;
    let found: i32 = tx
        .query_one(
            &qualify(
                "SELECT COALESCE(max(version), 0) FROM {schema}.invites_schema_migrations",
                schema,
            ),
            &[],
        )
        .await?
        .try_get(0)?;
    let found = u32::try_from(found).unwrap_or(0);
    if found >= known() {
        return Ok(found);
    }
    for (version, sql) in (1..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(found).unwrap_or(0))
    {
        tx.batch_execute(&qualify(sql, schema)).await?;
        tx.execute(
            &qualify(
                "INSERT INTO {schema}.invites_schema_migrations (version) VALUES ($1)",
                schema,
            ),
            &[&version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(found)
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
