//! The seed and command builders the store suite shares.

use invites_core::*;
use std::time::Duration;
use uuid::Uuid;

pub(crate) const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);
pub(crate) const DAY: i64 = 86_400_000;

pub(crate) fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0.as_millis() + ms)
}

pub(crate) fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

pub(crate) const ORG: OrganizationId = OrganizationId(Uuid::from_u128(0x0100));
pub(crate) const OTHER_ORG: OrganizationId = OrganizationId(Uuid::from_u128(0x0200));
pub(crate) const A: WebsiteId = WebsiteId(Uuid::from_u128(0x0a));
pub(crate) const B: WebsiteId = WebsiteId(Uuid::from_u128(0x0b));
pub(crate) const X: WebsiteId = WebsiteId(Uuid::from_u128(0x0f));
pub(crate) const FOREIGN: WebsiteId = WebsiteId(Uuid::from_u128(0x0e));
pub(crate) const G: GroupId = GroupId(Uuid::from_u128(0x0c));

pub(crate) fn email(s: &str) -> Email {
    Email::parse(s).expect("a valid test address")
}

pub(crate) fn name(s: &str) -> Option<PersonName> {
    PersonName::parse(s).expect("a valid test name")
}

pub(crate) fn web(w: WebsiteId) -> TargetId {
    TargetId::Website(w)
}

/// Two organizations: `ORG` with websites A ("Alpha"), B ("Beta"), X ("Xray") and group G
/// ("Gamma", holding A); `OTHER_ORG` with website FOREIGN.
///
/// # Panics
/// If the directory refuses the seed.
pub(crate) async fn seed(store: &dyn Directory) {
    store.create_organization(ORG, "Acme").await.expect("org");
    store
        .create_organization(OTHER_ORG, "Other")
        .await
        .expect("org");
    for (w, n, org) in [
        (A, "Alpha", ORG),
        (B, "Beta", ORG),
        (X, "Xray", ORG),
        (FOREIGN, "Foreign", OTHER_ORG),
    ] {
        let site = Website {
            id: w,
            organization: org,
            name: n.into(),
            url: format!("https://{n}.example"),
        };
        store.create_website(&site).await.expect("website");
    }
    store
        .create_group(&Group {
            id: G,
            organization: ORG,
            name: "Gamma".into(),
        })
        .await
        .expect("group");
    store.add_website_to_group(G, A).await.expect("link");
}

/// A direct-mode command adding `email_` (new user id `user`) as admin.
pub(crate) fn add(email_: &str, user: u128, targets: &[TargetId], now: Timestamp) -> AddMembers {
    AddMembers {
        organization: ORG,
        email: email(email_),
        new_user: NewUser {
            id: UserId(id(user)),
            first_name: name("Ann"),
            last_name: name("Lee"),
        },
        role: Role::Admin,
        targets: targets.to_vec(),
        now,
        actor: None,
    }
}

/// An email-mode command; ids derive from `seed` so every call can be distinct.
pub(crate) fn invite(
    email_: &str,
    seed: u128,
    targets: &[TargetId],
    now: Timestamp,
) -> CreateInvitations {
    CreateInvitations {
        organization: ORG,
        email: email(email_),
        role: Role::Viewer,
        first_name: name("Bo"),
        last_name: None,
        targets: targets
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, InvitationId(id(seed * 1000 + i as u128))))
            .collect(),
        batch: NewBatch {
            id: BatchId(id(seed)),
            token_hash: token(seed),
            message_id: MessageId(id(seed + 500_000)),
            accept_url: format!("https://app.example/accept/{seed}"),
            message_due_at: now.plus(Duration::from_secs(60)),
        },
        expires_at: Timestamp::from_millis(now.as_millis() + 7 * DAY),
        now,
        actor: None,
    }
}

/// The hash of the accept token of the batch made by `invite(.., seed, ..)`.
pub(crate) fn token(seed: u128) -> TokenHash {
    AcceptToken::from_user(&format!("token-{seed}")).hash()
}

/// The facts of slots that must all be `Ok`.
///
/// # Panics
/// If a slot is `Err`.
pub(crate) fn ok<F: Copy>(slots: &[TargetSlot<F>]) -> Vec<F> {
    slots
        .iter()
        .map(|s| *s.as_ref().expect("slot is Ok"))
        .collect()
}

/// A revoke of `id` in `organization` at [`T0`], by no key.
pub(crate) fn revoke(organization: OrganizationId, id: InvitationId) -> RevokeInvitation {
    RevokeInvitation {
        organization,
        id,
        now: T0,
        actor: None,
    }
}

/// `organization`'s whole event log, as (kind, target) pairs by position; asserts the
/// positions are 1, 2, 3, … with no gap.
///
/// # Panics
/// If the read fails or a position is out of place.
pub(crate) async fn log_of(
    store: &dyn crate::Backend,
    organization: OrganizationId,
) -> Vec<(EventKind, Option<TargetId>)> {
    let events = store
        .read_events(organization, 0, 10_000)
        .await
        .expect("read events");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.position,
            i as u64 + 1,
            "positions are gap-free: {events:?}"
        );
        assert_eq!(e.organization, organization);
    }
    events.into_iter().map(|e| (e.kind, e.target)).collect()
}
