//! What the benches share: a mailer that sends nothing, the folder for bench databases,
//! never-seen addresses, and an organization with its websites. Each bench includes it with
//! `#[path = "support/fixture.rs"] mod fixture;` and uses the part it needs.

// Each bench is its own crate and uses only part of this file.
#![allow(dead_code)]

use async_trait::async_trait;
use invites::core::{EmailMessage, MailError};
use invites::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A mailer that accepts everything and does nothing, so a bench times the library, not a
/// mail server.
#[derive(Debug)]
pub(crate) struct NullMailer;

#[async_trait]
impl Mailer for NullMailer {
    async fn send(&self, _: &EmailMessage) -> Result<(), MailError> {
        Ok(())
    }
}

/// `target/bench-data/` of the workspace, created if missing: the benches' database files
/// (the large seeded ones are kept there between runs).
pub(crate) fn bench_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-data");
    std::fs::create_dir_all(&dir).expect("create target/bench-data");
    dir
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// An address no earlier request of this process (or of an earlier process) used:
/// `{prefix}-{process id}-{n}@example.test`, so every timed request really inserts.
pub(crate) fn fresh_email(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}@example.test", std::process::id())
}

/// Creates the organization `org` ("Bench") and one website per id, the `i`-th named
/// `Site {i}` at `https://s{i}.bench.test`.
pub(crate) async fn seed_websites(
    dir: &dyn Directory,
    org: OrganizationId,
    sites: impl IntoIterator<Item = WebsiteId>,
) {
    dir.create_organization(org, "Bench")
        .await
        .expect("create the bench organization");
    for (i, id) in sites.into_iter().enumerate() {
        dir.create_website(&Website {
            id,
            organization: org,
            name: format!("Site {i}"),
            url: format!("https://s{i}.bench.test"),
        })
        .await
        .expect("create a bench website");
    }
}
