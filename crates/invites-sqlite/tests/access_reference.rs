//! Who has access, and taking it back (issue 18) on SQLite against the memory store as the
//! reference: the same deterministic stream of operations (direct and email invites, membership
//! changes and removals, organization members added, re-roled and removed, websites put in and
//! taken out of groups, groups deleted, the clock moving) on both, every answer compared, and
//! at checkpoints every access read compared: `access_paths` for every (user, website) pair,
//! every member list and every user's website list walked page by page with small and large
//! pages, with and without a website allowlist, in both organizations; and both organizations'
//! event logs, event for event.

mod common;

use invites_core::access::{MemberQuery, UserWebsitesQuery};
use invites_core::*;
use invites_sqlite::SqliteStore;
use invites_testkit::{Backend, Harness, World};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// One store with its service.
struct Side {
    backend: Arc<dyn Backend>,
    harness: Harness,
}

impl Side {
    async fn new(backend: Arc<dyn Backend>) -> (Side, World) {
        let world = World::seed(&*backend).await;
        let harness = Harness::with_seed(invites_testkit::as_store(&backend), 7);
        (Side { backend, harness }, world)
    }
}

/// A small deterministic generator (xorshift64*), so both stores get the same operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn role(&mut self) -> Role {
        if self.below(2) == 0 {
            Role::Admin
        } else {
            Role::Viewer
        }
    }

    fn org_role(&mut self) -> OrgRole {
        self.pick(&[OrgRole::Owner, OrgRole::Admin, OrgRole::Viewer])
    }
}

const USERS: usize = 10;

fn address(u: usize) -> String {
    format!("user{u}@reference.test")
}

/// The state both sides are driven over.
struct Scenario {
    memory: Side,
    sqlite: Side,
    world: World,
    rng: Rng,
    /// Every group ever used (deleted ones stay here, to be asked about).
    groups: Vec<GroupId>,
    /// Every website (the other organization's too), and one that never existed.
    websites: Vec<WebsiteId>,
    /// The kinds of change outcome and of path seen, so the run proves it reached them.
    seen: BTreeSet<String>,
}

impl Scenario {
    /// The ids of the users both stores have, checked to agree, plus one unknown id.
    async fn users(&self) -> Vec<UserId> {
        let mut ids = vec![UserId(Uuid::from_u128(0xdead))];
        for u in 0..USERS {
            let email = Email::parse(&address(u)).expect("email");
            let m = self.memory.backend.find_user(&email).await.expect("memory");
            let s = self.sqlite.backend.find_user(&email).await.expect("sqlite");
            assert_eq!(m, s, "find_user {u}");
            ids.extend(m.map(|user| user.id));
        }
        ids.push(self.world.org_admin);
        ids.push(self.world.existing_user);
        ids
    }

    fn targets(&self) -> Vec<TargetId> {
        let mut targets: Vec<TargetId> = self
            .websites
            .iter()
            .copied()
            .map(TargetId::Website)
            .collect();
        targets.extend(self.groups.iter().copied().map(TargetId::Group));
        targets
    }

    async fn step(&mut self, step: usize) {
        let op = self.rng.below(16);
        let users = self.users().await;
        let user = self.rng.pick(&users);
        let u = self.rng.below(USERS);
        let context = format!("step {step}, op {op}");
        match op {
            0..=4 => {
                let method = if op < 3 {
                    InviteMethod::Direct
                } else {
                    InviteMethod::Email
                };
                let mut request = if self.rng.below(3) == 0 {
                    let groups: Vec<GroupId> = (0..1 + self.rng.below(2))
                        .map(|_| self.rng.pick(&self.world.groups))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    BulkInviteRequest::groups(method, &address(u), groups)
                } else {
                    let sites: Vec<WebsiteId> = (0..1 + self.rng.below(3))
                        .map(|_| self.rng.pick(&self.world.websites))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    BulkInviteRequest::websites(method, &address(u), sites)
                };
                request.role = Some(self.rng.role());
                let key = self.world.global_key();
                let m = self
                    .memory
                    .harness
                    .service
                    .bulk_invite(&key, request.clone())
                    .await;
                let s = self.sqlite.harness.service.bulk_invite(&key, request).await;
                assert_eq!(
                    m.expect("memory"),
                    s.expect("sqlite"),
                    "{context}: bulk invite"
                );
            }
            5 | 6 => {
                let change = if op == 5 {
                    MemberChange::SetRole(self.rng.role())
                } else {
                    MemberChange::Remove
                };
                let organization = if self.rng.below(6) == 0 {
                    self.world.other_org
                } else {
                    self.world.org
                };
                let cmd = access::ChangeMember {
                    organization,
                    target: self.rng.pick(&self.targets()),
                    user,
                    change,
                    now: self.memory.harness.clock.now(),
                    actor: None,
                };
                let m = self
                    .memory
                    .backend
                    .change_member(&cmd)
                    .await
                    .expect("memory");
                let s = self
                    .sqlite
                    .backend
                    .change_member(&cmd)
                    .await
                    .expect("sqlite");
                assert_eq!(m, s, "{context}: {cmd:?}");
                let kind = match m {
                    ChangeFact::Removed { revoked, .. } if revoked > 0 => "RemovedRevoking".into(),
                    other => format!("{other:?}")
                        .split([' ', '{'])
                        .next()
                        .unwrap_or("")
                        .to_owned(),
                };
                self.seen.insert(kind);
            }
            7 => {
                let org = self
                    .rng
                    .pick(&[self.world.org, self.world.org, self.world.other_org]);
                if users[1..].contains(&user) {
                    let role = self.rng.org_role();
                    self.memory
                        .backend
                        .add_org_member(org, user, role)
                        .await
                        .expect("memory");
                    self.sqlite
                        .backend
                        .add_org_member(org, user, role)
                        .await
                        .expect("sqlite");
                }
            }
            8 => {
                let org = self.rng.pick(&[self.world.org, self.world.other_org]);
                let at = self.memory.harness.clock.now();
                let m = self.memory.backend.remove_org_member(org, user, at).await;
                let s = self.sqlite.backend.remove_org_member(org, user, at).await;
                assert_eq!(m.expect("memory"), s.expect("sqlite"), "{context}");
            }
            9 => {
                let org = self.rng.pick(&[self.world.org, self.world.other_org]);
                let role = self.rng.org_role();
                let at = self.memory.harness.clock.now();
                let m = self.memory.backend.set_org_role(org, user, role, at).await;
                let s = self.sqlite.backend.set_org_role(org, user, role, at).await;
                assert_eq!(m.expect("memory"), s.expect("sqlite"), "{context}");
            }
            10 | 11 => {
                let group = self.rng.pick(&self.world.groups);
                let website = self.rng.pick(&self.world.websites);
                let m = self
                    .memory
                    .backend
                    .add_website_to_group(group, website)
                    .await;
                let s = self
                    .sqlite
                    .backend
                    .add_website_to_group(group, website)
                    .await;
                assert_eq!(m.is_ok(), s.is_ok(), "{context}");
            }
            12 | 13 => {
                let group = self.rng.pick(&self.groups);
                let website = self.rng.pick(&self.websites);
                let at = self.memory.harness.clock.now();
                let m = self
                    .memory
                    .backend
                    .remove_website_from_group(group, website, at)
                    .await;
                let s = self
                    .sqlite
                    .backend
                    .remove_website_from_group(group, website, at)
                    .await;
                assert_eq!(m.expect("memory"), s.expect("sqlite"), "{context}");
            }
            14 => {
                // Rarely: a group goes, and a new one takes its place.
                if self.rng.below(4) == 0 {
                    let i = self.rng.below(self.world.groups.len());
                    let gone = self.world.groups[i];
                    let at = self.memory.harness.clock.now();
                    let m = self.memory.backend.delete_group(gone, at).await;
                    let s = self.sqlite.backend.delete_group(gone, at).await;
                    assert_eq!(m.expect("memory"), s.expect("sqlite"), "{context}");
                    let fresh = GroupId(Uuid::from_u128(0x9000 + step as u128));
                    let group = Group {
                        id: fresh,
                        organization: self.world.org,
                        name: format!("Group of step {step}"),
                    };
                    self.memory
                        .backend
                        .create_group(&group)
                        .await
                        .expect("memory");
                    self.sqlite
                        .backend
                        .create_group(&group)
                        .await
                        .expect("sqlite");
                    self.world.groups[i] = fresh;
                    self.groups.push(fresh);
                }
            }
            _ => {
                let d = Duration::from_secs(86_400 * (1 + self.rng.below(3) as u64));
                self.memory.harness.clock.advance(d);
                self.sqlite.harness.clock.advance(d);
            }
        }
    }

    fn note_paths<'a>(&mut self, paths: impl Iterator<Item = &'a AccessPath>) {
        for p in paths {
            self.seen.insert(p.kind().to_owned());
        }
    }

    /// Every access read, on both, compared.
    async fn compare_reads(&mut self, step: usize) {
        let users = self.users().await;
        let (m, s) = (self.memory.backend.clone(), self.sqlite.backend.clone());
        for &user in &users {
            for &website in &self.websites {
                let a = m.access_paths(user, website).await.expect("memory");
                let b = s.access_paths(user, website).await.expect("sqlite");
                assert_eq!(a, b, "step {step}: access_paths({user}, {website})");
                let a = self.memory.harness.service.access(user, website).await;
                let b = self.sqlite.harness.service.access(user, website).await;
                assert_eq!(
                    a.expect("memory"),
                    b.expect("sqlite"),
                    "step {step}: access"
                );
            }
        }
        for organization in [self.world.org, self.world.other_org] {
            // The event log: the same events, at the same positions, field for field.
            let a = all_events(&*m, organization).await;
            let b = all_events(&*s, organization).await;
            assert_eq!(a, b, "step {step}: events of {organization}");
            for target in self.targets() {
                for limit in [1, 3, 500] {
                    let a = member_pages(&*m, organization, target, limit).await;
                    let b = member_pages(&*s, organization, target, limit).await;
                    assert_eq!(a, b, "step {step}: members of {target:?}, limit {limit}");
                    self.note_paths(a.iter().flatten().flatten().flat_map(|r| &r.paths));
                }
            }
            let allowlists = [
                None,
                Some(BTreeSet::from([
                    self.world.websites[0],
                    self.world.websites[3],
                    self.world.websites[5],
                    self.world.other_website,
                    WebsiteId(Uuid::from_u128(0xbad)),
                ])),
            ];
            for &user in &users {
                for websites in &allowlists {
                    for limit in [1, 2, 500] {
                        let a = website_pages(&*m, organization, user, websites, limit).await;
                        let b = website_pages(&*s, organization, user, websites, limit).await;
                        assert_eq!(a, b, "step {step}: websites of {user}, limit {limit}");
                        self.note_paths(a.iter().flatten().flat_map(|r| &r.paths));
                    }
                }
            }
        }
    }
}

/// An organization's whole event log, read with the cursor in pages of 7.
async fn all_events(store: &dyn Backend, organization: OrganizationId) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    loop {
        let after = events.last().map_or(0, |e| e.position);
        let page = store
            .read_events(organization, after, 7)
            .await
            .expect("read_events");
        let full = page.len() == 7;
        events.extend(page);
        if !full {
            return events;
        }
    }
}

/// Every page of a target's members, walked with the cursor.
async fn member_pages(
    store: &dyn Backend,
    organization: OrganizationId,
    target: TargetId,
    limit: usize,
) -> Vec<Option<Vec<access::MemberRecord>>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let q = MemberQuery {
            organization,
            target,
            after,
            limit,
        };
        let page = store.list_members(&q).await.expect("list_members");
        let Some(records) = page else {
            pages.push(None);
            return pages;
        };
        let full = records.len() == limit;
        after = records.last().map(|r| r.user);
        pages.push(Some(records));
        if !full {
            return pages;
        }
    }
}

/// Every page of a user's websites, walked with the cursor.
async fn website_pages(
    store: &dyn Backend,
    organization: OrganizationId,
    user: UserId,
    websites: &Option<BTreeSet<WebsiteId>>,
    limit: usize,
) -> Vec<Vec<access::UserWebsiteRecord>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let q = UserWebsitesQuery {
            organization,
            user,
            after,
            limit,
            websites: websites.clone(),
        };
        let records = store
            .list_user_websites(&q)
            .await
            .expect("list_user_websites");
        let full = records.len() == limit;
        after = records.last().map(|r| r.website);
        pages.push(records);
        if !full {
            return pages;
        }
    }
}

#[tokio::test]
async fn sqlite_answers_every_access_read_and_change_as_the_memory_store() {
    let sqlite = SqliteStore::open(common::fresh_path("access-reference"))
        .await
        .expect("open");
    let (memory, world) = Side::new(Arc::new(invites_memory::MemoryStore::new())).await;
    let (sqlite, same) = Side::new(Arc::new(sqlite)).await;
    assert_eq!(world.websites, same.websites);
    let mut websites = world.websites.clone();
    websites.extend([world.other_website, WebsiteId(Uuid::from_u128(0xbad))]);
    let mut groups = world.groups.clone();
    groups.push(world.other_group);
    let mut scenario = Scenario {
        memory,
        sqlite,
        world,
        rng: Rng(0x5eed_1234_abcd_0001),
        groups,
        websites,
        seen: BTreeSet::new(),
    };
    for step in 0..400 {
        scenario.step(step).await;
        if step % 40 == 39 {
            scenario.compare_reads(step).await;
        }
    }
    scenario.compare_reads(400).await;
    let m = scenario.memory.backend.snapshot().await.expect("memory");
    let s = scenario.sqlite.backend.snapshot().await.expect("sqlite");
    assert_eq!(m, s, "final state");
    // Every kind of event the scenario's calls write was written, at gap-free positions.
    let mut kinds = BTreeSet::new();
    for organization in [scenario.world.org, scenario.world.other_org] {
        let log = all_events(&*scenario.sqlite.backend, organization).await;
        assert!(
            log.iter()
                .zip(1..)
                .all(|(e, position)| e.position == position),
            "gap-free positions"
        );
        kinds.extend(log.iter().map(|e| e.kind));
    }
    for kind in [
        EventKind::MemberAdded,
        EventKind::UserCreated,
        EventKind::InvitationCreated,
        EventKind::MemberRoleChanged,
        EventKind::MemberRemoved,
        EventKind::OrgMemberRemoved,
        EventKind::OrgMemberRoleChanged,
        EventKind::WebsiteRemovedFromGroup,
        EventKind::GroupDeleted,
    ] {
        assert!(kinds.contains(&kind), "never wrote {kind}: {kinds:?}");
    }
    // The scenario reached every outcome of a change and every kind of path. (A removal that
    // revokes a live invitation needs a member with a pending invitation to the same target,
    // which the service never makes: `membership_changes.rs` plants one.)
    let expected = [
        "Updated",
        "Removed",
        "Unchanged",
        "NotAMember",
        "OrgMember",
        "TargetNotFound",
        "direct",
        "group",
        "organization",
    ];
    for kind in expected {
        assert!(
            scenario.seen.contains(kind),
            "never reached {kind}: {:?}",
            scenario.seen
        );
    }
}
