//! Migrates the invites schema: the deployment step to run, as the schema's owner, before app
//! servers that connect with `PgOptions::migrate(false)`.
//!
//! ```text
//! DATABASE_URL=postgresql://owner@db.internal/app \
//!     cargo run -p invites-postgres --example migrate -- --schema invites
//! cargo run -p invites-postgres --example migrate -- postgresql://owner@db.internal/app
//! ```
//!
//! The URL is the last argument, or `DATABASE_URL` when there is none (which keeps a password
//! out of the process list); `--schema NAME` defaults to `public`. Prints the version before
//! and after; exits with 1 and the reason on failure (never the URL).

use invites_postgres::{PgOptions, PgStore};
use std::process::ExitCode;

const USAGE: &str = "usage: migrate [--schema NAME] [URL]   (URL defaults to $DATABASE_URL)";

fn main() -> ExitCode {
    let mut schema = None;
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--schema" => schema = args.next(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if url.is_none() && !arg.starts_with("--") => url = Some(arg),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(url) = url.or_else(|| std::env::var("DATABASE_URL").ok()) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let options = match schema {
        Some(name) => match PgOptions::default().schema(&name) {
            Ok(options) => options,
            Err(e) => {
                eprintln!("migrate: {e}");
                return ExitCode::from(2);
            }
        },
        None => PgOptions::default(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(PgStore::migrate(&url, &options)) {
        Ok(done) if done.from == done.to => {
            println!(
                "schema {}: at version {}, nothing to do",
                options.schema_name(),
                done.to
            );
            ExitCode::SUCCESS
        }
        Ok(done) => {
            println!(
                "schema {}: migrated from version {} to {}",
                options.schema_name(),
                done.from,
                done.to
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            // Its text holds the server's reason, never the URL (it may hold a password).
            eprintln!("migrate: {e}");
            ExitCode::from(1)
        }
    }
}
