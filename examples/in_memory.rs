//! One direct and one email bulk invite, end to end, on the in-memory backend.
//!
//! Run with `cargo run --example in_memory`.

use invites::core::{Group, GroupId};
use invites::memory::{MemoryStore, RecordingMailer};
use invites::prelude::*;
use std::sync::Arc;
use uuid::Uuid;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    let org = OrganizationId(Uuid::from_u128(1));
    store.create_organization(org, "Acme").await?;
    let sites: Vec<WebsiteId> = (0..3).map(|i| WebsiteId(Uuid::from_u128(10 + i))).collect();
    for (i, id) in sites.iter().enumerate() {
        let name = ["Shop", "Blog", "Docs"][i];
        store
            .create_website(&Website {
                id: *id,
                organization: org,
                name: name.into(),
                url: format!("https://{name}.acme.test"),
            })
            .await?;
    }
    let group = GroupId(Uuid::from_u128(20));
    store
        .create_group(&Group {
            id: group,
            organization: org,
            name: "Marketing".into(),
        })
        .await?;

    let mailer = RecordingMailer::new_ok();
    let service = InviteService::new(
        Arc::new(store.clone()),
        Arc::new(mailer.clone()),
        InviteConfig::new("https://app.acme.test/invites/accept")?,
    );
    let key = Principal::global(org, ApiKeyId(Uuid::from_u128(99)));

    // Direct: added at once, no email. The unknown id is reported per target, the rest proceed.
    let direct = format!(
        r#"{{"invite_method":"direct","email":"Bob@Example.com","role":"admin","website_ids":["{}","{}","{}"]}}"#,
        sites[0],
        sites[1],
        Uuid::from_u128(404)
    );
    let response = service
        .bulk_invite(&key, BulkInviteRequest::from_json(direct.as_bytes())?)
        .await?;
    println!("direct:\n{}\n", serde_json::to_string_pretty(&response)?);

    // Email: one invitation per target, ONE consolidated email.
    let email = format!(
        r#"{{"invite_method":"email","email":"carol@example.com","first_name":"Carol","website_ids":["{}","{}","{}"]}}"#,
        sites[0], sites[1], sites[2]
    );
    let response = service
        .bulk_invite(&key, BulkInviteRequest::from_json(email.as_bytes())?)
        .await?;
    println!("email:\n{}\n", serde_json::to_string_pretty(&response)?);
    for message in mailer.sent() {
        // Headers from `Display` (which never prints bodies), then the text part on purpose.
        println!("{message}\n\n{}", message.text);
    }

    // Groups need a global key; a scoped one is refused before anything happens.
    let scoped = Principal::websites(org, ApiKeyId(Uuid::from_u128(98)), [sites[0]]);
    let groups = format!(
        r#"{{"invite_method":"direct","email":"dan@example.com","group_ids":["{group}"]}}"#
    );
    let err = service
        .bulk_invite(&scoped, BulkInviteRequest::from_json(groups.as_bytes())?)
        .await
        .unwrap_err();
    println!(
        "scoped key with group_ids: {}",
        serde_json::to_string_pretty(&err.to_json())?
    );
    Ok(())
}
