//! Fixtures: a seeded [`World`] and a [`Harness`] wiring a service to a store.

use crate::deterministic::{ManualClock, SeededRandom, id};
use invites_core::RecordingMailer;
use invites_core::*;
use std::sync::Arc;

/// Everything a backend offers: the store port, the directory and the inspector.
pub trait Backend: MembershipStore + Directory + Inspect {}
impl<T: MembershipStore + Directory + Inspect> Backend for T {}

/// The store port of a backend (the same object, upcast), for [`Harness::with_seed`] or a
/// [`FaultyStore`](crate::FaultyStore).
pub fn as_store(backend: &Arc<dyn Backend>) -> Arc<dyn MembershipStore> {
    backend.clone()
}

/// A seeded organization: 6 websites, 2 groups (2 websites each), an org member, an existing
/// unverified user with no access; and another organization with one website and one group.
#[derive(Clone, Debug)]
pub struct World {
    /// The caller's organization.
    pub org: OrganizationId,
    /// Its websites, named "Site 0".."Site 5".
    pub websites: Vec<WebsiteId>,
    /// Its groups, named "Group 0", "Group 1".
    pub groups: Vec<GroupId>,
    /// An org admin (`admin@acme.test`).
    pub org_admin: UserId,
    /// An existing user without access (`existing@acme.test`).
    pub existing_user: UserId,
    /// Another organization.
    pub other_org: OrganizationId,
    /// Its website.
    pub other_website: WebsiteId,
    /// Its group.
    pub other_group: GroupId,
}

impl World {
    /// Seeds the world into `dir` (idempotent).
    ///
    /// # Panics
    /// If the directory refuses the seed.
    pub async fn seed(dir: &dyn Directory) -> World {
        let org = OrganizationId(id(0x100));
        let other_org = OrganizationId(id(0x200));
        dir.create_organization(org, "Acme").await.expect("org");
        dir.create_organization(other_org, "Other")
            .await
            .expect("org");
        let websites: Vec<WebsiteId> = (0..6).map(|i| WebsiteId(id(0x110 + i))).collect();
        for (i, w) in websites.iter().enumerate() {
            dir.create_website(&Website {
                id: *w,
                organization: org,
                name: format!("Site {i}"),
                url: format!("https://site{i}.acme.test"),
            })
            .await
            .expect("website");
        }
        let groups: Vec<GroupId> = (0..2).map(|i| GroupId(id(0x120 + i))).collect();
        for (i, g) in groups.iter().enumerate() {
            dir.create_group(&Group {
                id: *g,
                organization: org,
                name: format!("Group {i}"),
            })
            .await
            .expect("group");
            for w in &websites[i * 2..i * 2 + 2] {
                dir.add_website_to_group(*g, *w).await.expect("link");
            }
        }
        let other_website = WebsiteId(id(0x210));
        dir.create_website(&Website {
            id: other_website,
            organization: other_org,
            name: "Elsewhere".into(),
            url: "https://elsewhere.test".into(),
        })
        .await
        .expect("website");
        let other_group = GroupId(id(0x220));
        dir.create_group(&Group {
            id: other_group,
            organization: other_org,
            name: "Their group".into(),
        })
        .await
        .expect("group");
        let org_admin = dir
            .create_user(&User {
                id: UserId(id(0x130)),
                email: Email::parse("admin@acme.test").expect("email"),
                email_verified: true,
                first_name: None,
                last_name: None,
            })
            .await
            .expect("user");
        dir.add_org_member(org, org_admin, OrgRole::Admin)
            .await
            .expect("member");
        let existing_user = dir
            .create_user(&User {
                id: UserId(id(0x131)),
                email: Email::parse("existing@acme.test").expect("email"),
                email_verified: false,
                first_name: PersonName::parse("Ex").expect("name"),
                last_name: None,
            })
            .await
            .expect("user");
        World {
            org,
            websites,
            groups,
            org_admin,
            existing_user,
            other_org,
            other_website,
            other_group,
        }
    }

    /// A global key of the organization.
    pub fn global_key(&self) -> Principal {
        Principal::global(self.org, ApiKeyId(id(0x140)))
    }

    /// A key of the organization limited to `websites`.
    pub fn scoped_key(&self, websites: &[WebsiteId]) -> Principal {
        Principal::websites(self.org, ApiKeyId(id(0x141)), websites.iter().copied())
    }
}

/// A service over a backend with a manual clock, seeded randomness and a recording mailer.
#[derive(Clone, Debug)]
pub struct Harness {
    /// The service.
    pub service: InviteService,
    /// The mailer it uses.
    pub mailer: RecordingMailer,
    /// The clock it uses.
    pub clock: ManualClock,
    /// The store as given.
    pub store: Arc<dyn MembershipStore>,
}

impl Harness {
    /// The base of every accept link a harness builds.
    pub const ACCEPT_URL_BASE: &'static str = "https://app.acme.test/invites/accept";

    /// With seed 1.
    pub fn new(store: impl MembershipStore) -> Self {
        Self::with_seed(Arc::new(store), 1)
    }

    /// With a shared store and a chosen seed.
    ///
    /// # Panics
    /// Never (the accept URL is a constant).
    pub fn with_seed(store: Arc<dyn MembershipStore>, seed: u64) -> Self {
        let mailer = RecordingMailer::new_ok();
        let clock = ManualClock::standard();
        let config = Self::config(&clock, seed);
        let service = InviteService::new(store.clone(), Arc::new(mailer.clone()), config);
        Harness {
            service,
            mailer,
            clock,
            store,
        }
    }

    /// The configuration every harness uses: accept links under [`Harness::ACCEPT_URL_BASE`],
    /// `clock`, and [`SeededRandom`] with `seed`; defaults otherwise. For tests that wire a
    /// service to their own mailer.
    ///
    /// # Panics
    /// Never (the accept URL is a constant).
    pub fn config(clock: &ManualClock, seed: u64) -> InviteConfig {
        InviteConfig::new(Self::ACCEPT_URL_BASE)
            .expect("valid base")
            .with_clock(Arc::new(clock.clone()))
            .with_random(Arc::new(SeededRandom::new(seed)))
    }

    /// The token in the accept link of the last message sent.
    ///
    /// # Panics
    /// If nothing was sent.
    pub fn last_token(&self) -> String {
        let sent = self.mailer.sent();
        let m = sent.last().expect("a message was sent");
        let start = m.text.find("token=").expect("link in text") + "token=".len();
        m.text[start..start + 64].to_owned()
    }
}
