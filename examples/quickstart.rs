//! The SQLite quickstart: `cargo run --example quickstart`.
//!
//! Opens (creating it if needed) `invites-quickstart.db` in the current directory, seeds an
//! organization with named websites and groups (idempotently, so a second run works), then
//! runs a direct bulk invite in which one target is already a member and an email bulk
//! invite, printing both JSON responses and the consolidated email. Run it twice: the second
//! run shows `already_member` and `already_invited` outcomes and sends no email.
//!
//! The mailer comes from this example's own configuration (environment variables read here,
//! never by the library):
//!
//! - `INVITES_SMTP_URL` (e.g. `smtp://user:pass@smtp.example.com?tls=starttls` or
//!   `smtps://...`) with `INVITES_MAIL_FROM`: sends over SMTP (build with `--features smtp`);
//! - `POSTMARK_SERVER_TOKEN` with `INVITES_MAIL_FROM`: sends through Postmark (build with
//!   `--features postmark`);
//! - otherwise the email is printed.
//!
//! `INVITES_QUICKSTART_TO` replaces the example recipient (`erin@example.com`) when you want
//! the email to reach a real mailbox.

use async_trait::async_trait;
use invites::core::{Email, EmailMessage, Group, GroupId, MailError, OrgRole, User, WebsiteId};
use invites::prelude::*;
use invites::sqlite::SqliteStore;
use std::error::Error;
use std::sync::Arc;
use uuid::Uuid;

#[path = "support/mail_from_env.rs"]
mod mail_from_env;

/// A mailer that prints each message instead of sending it.
#[derive(Debug)]
struct PrintingMailer;

#[async_trait]
impl Mailer for PrintingMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        // `Display` shows headers only (the bodies hold the live accept link); a development
        // console prints the text part on purpose.
        println!(
            "--- consolidated email ---\n{message}\n\n{}--- end of email ---\n",
            message.text
        );
        Ok(())
    }
}

const SITES: [(&str, &str); 5] = [
    ("Shop", "https://shop.acme.test"),
    ("Blog", "https://blog.acme.test"),
    ("Docs", "https://docs.acme.test"),
    ("Status", "https://status.acme.test"),
    ("Careers", "https://careers.acme.test"),
];

fn site(i: usize) -> WebsiteId {
    WebsiteId(Uuid::from_u128(0x5170 + i as u128))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let mailer = mail_from_env::from_env(Arc::new(PrintingMailer))?;
    let to = std::env::var("INVITES_QUICKSTART_TO").unwrap_or_else(|_| "erin@example.com".into());
    let path = "invites-quickstart.db";
    let store = SqliteStore::open(path).await?;
    println!("database: {path}\n");

    // Seed: the same ids every run, so this is a no-op the second time.
    let org = OrganizationId(Uuid::from_u128(0xAC3E));
    store.create_organization(org, "Acme").await?;
    for (i, (name, url)) in SITES.iter().enumerate() {
        store
            .create_website(&Website {
                id: site(i),
                organization: org,
                name: (*name).into(),
                url: (*url).into(),
            })
            .await?;
    }
    let groups = [
        (GroupId(Uuid::from_u128(0x6401)), "Marketing", [0, 1]),
        (GroupId(Uuid::from_u128(0x6402)), "Engineering", [2, 3]),
    ];
    for (id, name, members) in groups {
        store
            .create_group(&Group {
                id,
                organization: org,
                name: name.into(),
            })
            .await?;
        for m in members {
            store.add_website_to_group(id, site(m)).await?;
        }
    }
    let owner = store
        .create_user(&User {
            id: UserId(Uuid::from_u128(0x0E11)),
            email: Email::parse("owner@acme.test")?,
            email_verified: true,
            first_name: None,
            last_name: None,
        })
        .await?;
    store.add_org_member(org, owner, OrgRole::Owner).await?;

    let service = InviteService::new(
        Arc::new(store.clone()),
        mailer,
        InviteConfig::new("https://app.acme.test/invites/accept")?,
    );
    let key = Principal::global(org, ApiKeyId(Uuid::from_u128(0x4E1)));

    // Dana is already a member of the Shop (added directly, as a host's admin UI would).
    let seed = BulkInviteRequest::websites(InviteMethod::Direct, "dana@example.com", [site(0)]);
    service.bulk_invite(&key, seed).await?;

    // 1. Direct: Shop (already a member), Blog and Docs (added on the first run).
    let direct = format!(
        r#"{{"invite_method": "direct", "email": "Dana@Example.com", "role": "admin",
            "website_ids": ["{}", "{}", "{}"], "first_name": "Dana"}}"#,
        site(0),
        site(1),
        site(2)
    );
    let response = service
        .bulk_invite(&key, BulkInviteRequest::from_json(direct.as_bytes())?)
        .await?;
    println!(
        "direct bulk invite:\n{}\n",
        serde_json::to_string_pretty(&response)?
    );

    // 2. Email: one invitation per target and ONE consolidated email.
    let email = serde_json::json!({
        "invite_method": "email", "email": to, "first_name": "Erin",
        "website_ids": [site(2), site(3), site(4)],
    })
    .to_string();
    let response = service
        .bulk_invite(&key, BulkInviteRequest::from_json(email.as_bytes())?)
        .await?;
    println!(
        "email bulk invite:\n{}\n",
        serde_json::to_string_pretty(&response)?
    );
    Ok(())
}
