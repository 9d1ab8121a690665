//! Proptest strategies over the seeded [`World`]: requests, callers, raw JSON bodies and
//! operation sequences ([`Op`]) for the property tests of docs/contract.md §9.
//!
//! Requests mix the world's websites and groups, the other organization's targets and unknown
//! random ids; emails come from the small [`EMAIL_POOL`] (two of which belong to existing
//! users) in random letter case with surrounding spaces, so that requests often meet state
//! left by earlier ones.
//!
//! ```
//! use invites_testkit::strategies::{bulk_request, standard_world};
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::TestRunner;
//!
//! let world = standard_world();
//! let mut runner = TestRunner::deterministic();
//! let request = bulk_request(&world).new_tree(&mut runner).unwrap().current();
//! assert!(request.validate().is_ok());
//! ```

use crate::MailerMode;
use crate::differential::{Member, Op};
use crate::fixtures::World;
use invites_core::*;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::{Value, json};
use std::sync::OnceLock;
use std::time::Duration;
use uuid::Uuid;

/// The addresses requests use: two new people, the world's existing user and org admin, and
/// one more new person.
pub const EMAIL_POOL: [&str; 5] = [
    "ann@example.com",
    "bob@example.com",
    "existing@acme.test",
    "admin@acme.test",
    "carol.day@example.org",
];

/// The key id of the other organization's global key from [`principal()`].
pub const OTHER_ORG_KEY: Uuid = Uuid::from_u128(0x240);

/// The [`World`] every seeded store gets ([`World::seed`] is deterministic), computed once by
/// seeding a scratch in-memory store.
///
/// # Panics
/// If called from inside a Tokio runtime the first time (it blocks on the seeding).
pub fn standard_world() -> World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime")
                .block_on(World::seed(&invites_memory::MemoryStore::new()))
        })
        .clone()
}

/// An address of the pool, normalised.
pub fn pool_email() -> impl Strategy<Value = Email> {
    select(EMAIL_POOL.to_vec()).prop_map(|e| Email::parse(e).expect("pool emails are valid"))
}

/// An address of the pool as a client might send it: random letter case, up to two spaces on
/// either side.
pub fn email_text() -> impl Strategy<Value = String> {
    (
        select(EMAIL_POOL.to_vec()),
        any::<u64>(),
        0usize..3,
        0usize..3,
    )
        .prop_map(|(e, case, left, right)| {
            let body: String = e
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if case >> (i % 64) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            format!("{}{body}{}", " ".repeat(left), " ".repeat(right))
        })
}

/// `direct` or `email`.
pub fn method() -> impl Strategy<Value = InviteMethod> {
    prop_oneof![Just(InviteMethod::Direct), Just(InviteMethod::Email)]
}

/// No role (viewer by default), `admin` or `viewer`.
pub fn role() -> impl Strategy<Value = Option<Role>> {
    prop_oneof![
        Just(None),
        Just(Some(Role::Admin)),
        Just(Some(Role::Viewer))
    ]
}

/// An optional name (some are blank, which counts as absent; some need HTML escaping).
pub fn name() -> impl Strategy<Value = Option<String>> {
    prop::option::of(select(vec![
        "Ann".to_owned(),
        "  Bob  ".to_owned(),
        String::new(),
        "Zoë Ünal".to_owned(),
        "O'Brien <&>".to_owned(),
    ]))
}

/// A website id: one of the world's (most often), the other organization's, or unknown.
pub fn website_id(world: &World) -> impl Strategy<Value = Uuid> + use<> {
    let own: Vec<Uuid> = world.websites.iter().map(|w| w.0).collect();
    let other = world.other_website.0;
    prop_oneof![
        8 => select(own),
        1 => Just(other),
        1 => any::<u128>().prop_map(Uuid::from_u128),
    ]
}

/// A group id: one of the world's (most often), the other organization's, or unknown.
pub fn group_id(world: &World) -> impl Strategy<Value = Uuid> + use<> {
    let own: Vec<Uuid> = world.groups.iter().map(|g| g.0).collect();
    let other = world.other_group.0;
    prop_oneof![
        6 => select(own),
        1 => Just(other),
        1 => any::<u128>().prop_map(Uuid::from_u128),
    ]
}

fn dedup(ids: Vec<Uuid>) -> Vec<Uuid> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// 1 to `max` distinct targets of one kind (websites three times as often as groups).
pub fn targets(world: &World, max: usize) -> impl Strategy<Value = Vec<TargetId>> + use<> {
    let max = max.max(1);
    prop_oneof![
        3 => prop::collection::vec(website_id(world), 1..=max)
            .prop_map(|v| dedup(v).into_iter().map(|u| TargetId::Website(WebsiteId(u))).collect()),
        1 => prop::collection::vec(group_id(world), 1..=max)
            .prop_map(|v| dedup(v).into_iter().map(|u| TargetId::Group(GroupId(u))).collect()),
    ]
}

/// Builds a request to `targets` (all of one kind).
pub fn request_to(
    method: InviteMethod,
    email: String,
    role: Option<Role>,
    targets: &[TargetId],
    first_name: Option<String>,
    last_name: Option<String>,
) -> BulkInviteRequest {
    let websites: Vec<WebsiteId> = targets
        .iter()
        .filter_map(|t| match t {
            TargetId::Website(w) => Some(*w),
            TargetId::Group(_) => None,
        })
        .collect();
    let groups: Vec<GroupId> = targets
        .iter()
        .filter_map(|t| match t {
            TargetId::Group(g) => Some(*g),
            TargetId::Website(_) => None,
        })
        .collect();
    BulkInviteRequest {
        invite_method: method,
        email,
        role,
        website_ids: (!websites.is_empty()).then_some(websites),
        group_ids: (!groups.is_empty()).then_some(groups),
        first_name,
        last_name,
    }
}

/// A valid request: either method, a pool email as a client might write it, any role,
/// optional names, 1 to 6 distinct targets of one kind.
pub fn bulk_request(world: &World) -> impl Strategy<Value = BulkInviteRequest> + use<> {
    (
        method(),
        email_text(),
        role(),
        targets(world, 6),
        name(),
        name(),
    )
        .prop_map(|(m, e, r, t, f, l)| request_to(m, e, r, &t, f, l))
}

/// A caller: the world's global key (most often), a key scoped to a random subset of the
/// world's websites (sometimes with the other organization's website), or the other
/// organization's global key.
pub fn principal(world: &World) -> impl Strategy<Value = Principal> + use<> {
    let global = world.global_key();
    let mut allowable = world.websites.clone();
    allowable.push(world.other_website);
    let w = world.clone();
    let other = Principal::global(world.other_org, ApiKeyId(OTHER_ORG_KEY));
    prop_oneof![
        5 => Just(global),
        2 => subsequence(allowable.clone(), 0..=allowable.len())
            .prop_map(move |ws| w.scoped_key(&ws)),
        1 => Just(other),
    ]
}

/// A key scoped to a random subset (possibly empty) of the world's websites.
pub fn scoped_principal(world: &World) -> impl Strategy<Value = Principal> + use<> {
    let w = world.clone();
    subsequence(world.websites.clone(), 0..=world.websites.len())
        .prop_map(move |ws| w.scoped_key(&ws))
}

/// A mailer mode: failing transiently (most often), accepting, or failing permanently
/// (rarely).
pub fn mailer_mode() -> impl Strategy<Value = MailerMode> {
    prop_oneof![
        2 => Just(MailerMode::Ok),
        3 => Just(MailerMode::FailTransient),
        1 => Just(MailerMode::FailPermanent),
    ]
}

/// A clock move: seconds, minutes, hours, or about a week (across the invitation expiry).
pub fn clock_move() -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => (1u64..=90).prop_map(Duration::from_secs),
        3 => (1u64..=180).prop_map(|m| Duration::from_secs(m * 60)),
        2 => (1u64..=48).prop_map(|h| Duration::from_secs(h * 3600)),
        1 => (6u64 * 24..=8 * 24).prop_map(|h| Duration::from_secs(h * 3600)),
    ]
}

fn org_role() -> impl Strategy<Value = OrgRole> {
    prop_oneof![
        Just(OrgRole::Owner),
        Just(OrgRole::Admin),
        Just(OrgRole::Viewer)
    ]
}

/// A bulk op: a request (email mode about two times in three; one in twenty made invalid by
/// repeating its first target), a caller, and one time in four an idempotency key from a pool
/// of three.
pub fn bulk_op(world: &World) -> impl Strategy<Value = Op> + use<> {
    (
        principal(world),
        bulk_request(world),
        prop_oneof![
            3 => Just(None),
            1 => select(vec!["k0", "k1", "k2"]).prop_map(|k| Some(k.to_owned())),
        ],
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.35),
    )
        .prop_map(|(principal, mut request, idempotency_key, repeat, email)| {
            if email {
                request.invite_method = InviteMethod::Email;
            }
            if repeat {
                if let Some(w) = request.website_ids.as_mut() {
                    w.push(w[0]);
                }
                if let Some(g) = request.group_ids.as_mut() {
                    g.push(g[0]);
                }
            }
            Op::Bulk {
                principal,
                request,
                idempotency_key,
            }
        })
}

/// Any op of the differential test: bulk invites and replays, org-member additions, website
/// deletion (rare), deliveries, purges, mailer changes, clock moves (rarely past the 30 days
/// of retention at once), revoke, resend, preview, accept, listing, and who has access and
/// taking it back ([`access_change_op`], [`access_list_op`]).
pub fn op(world: &World) -> impl Strategy<Value = Op> + use<> {
    let orgs = vec![world.org, world.org, world.org, world.other_org];
    let websites = world.websites.clone();
    let global = world.global_key();
    let mostly_global = prop_oneof![3 => Just(global), 1 => principal(world)];
    prop_oneof![
        8 => bulk_op(world),
        1 => Just(Op::Replay),
        2 => (select(orgs), pool_email(), org_role()).prop_map(|(organization, email, role)| {
            Op::AddOrgMember { organization, email, role }
        }),
        4 => Just(Op::DeliverDue),
        3 => mailer_mode().prop_map(Op::SetMailer),
        4 => clock_move().prop_map(Op::Advance),
        1 => (20u64..=40).prop_map(|d| Op::Advance(Duration::from_secs(d * 24 * 3600))),
        2 => Just(Op::Purge),
        2 => (mostly_global.clone(), any::<usize>())
            .prop_map(|(principal, invitation)| Op::Revoke { principal, invitation }),
        2 => (mostly_global, any::<usize>())
            .prop_map(|(principal, batch)| Op::Resend { principal, batch }),
        1 => any::<usize>().prop_map(|token| Op::Preview { token }),
        3 => (any::<usize>(), prop::option::weighted(0.3, pool_email()))
            .prop_map(|(token, signed_in)| Op::Accept { token, signed_in }),
        1 => select(websites).prop_map(Op::DeleteWebsite),
        2 => list_op(world),
        10 => access_change_op(world),
        3 => access_list_op(world),
    ]
}

/// A group id for directory changes: one of the world's (most often), the other
/// organization's, or unknown.
fn directory_group(world: &World) -> impl Strategy<Value = GroupId> + use<> {
    prop_oneof![
        4 => select(world.groups.clone()),
        1 => Just(world.other_group),
        1 => Just(GroupId(crate::differential::UNKNOWN)),
    ]
}

/// A website id for directory changes: one of the world's (most often) or the other
/// organization's.
fn directory_website(world: &World) -> impl Strategy<Value = WebsiteId> + use<> {
    prop_oneof![
        6 => select(world.websites.clone()),
        1 => Just(world.other_website),
    ]
}

/// A change of who has access (docs/contract.md §11): `set_member_role` and `remove_member` by a mostly
/// global key, of a membership the run has seen (most often) or of a pool user on one of the
/// world's targets (sometimes another organization's or an unknown one); removing an organization member or changing its role; putting a
/// website into a group or taking it out; deleting a group (rare); erasing a pool address in
/// a client's spelling (one time in five not an address at all).
pub fn access_change_op(world: &World) -> impl Strategy<Value = Op> + use<> {
    let orgs = vec![world.org, world.org, world.org, world.other_org];
    let global = world.global_key();
    let mostly_global = prop_oneof![3 => Just(global), 1 => principal(world)];
    let member = || {
        (
            prop::option::weighted(0.6, any::<usize>()),
            targets(world, 1),
            pool_email(),
        )
            .prop_map(|(seen, t, email)| Member {
                seen,
                target: t[0],
                email,
            })
    };
    let role = prop_oneof![Just(Role::Admin), Just(Role::Viewer)];
    prop_oneof![
        3 => (mostly_global.clone(), member(), role)
            .prop_map(|(principal, member, role)| Op::SetMemberRole { principal, member, role }),
        4 => (mostly_global, member())
            .prop_map(|(principal, member)| Op::RemoveMember { principal, member }),
        1 => (select(orgs.clone()), pool_email()).prop_map(|(organization, email)| {
            Op::RemoveOrgMember { organization, email }
        }),
        1 => (select(orgs), pool_email(), org_role()).prop_map(|(organization, email, role)| {
            Op::SetOrgRole { organization, email, role }
        }),
        1 => (directory_group(world), directory_website(world))
            .prop_map(|(group, website)| Op::AddWebsiteToGroup { group, website }),
        1 => (directory_group(world), directory_website(world))
            .prop_map(|(group, website)| Op::RemoveWebsiteFromGroup { group, website }),
        1 => directory_group(world).prop_map(Op::DeleteGroup),
        1 => prop_oneof![4 => email_text(), 1 => Just("not an address".to_owned())]
            .prop_map(Op::Erase),
    ]
}

/// A read of who has access: `members_of` one of the world's targets (sometimes another
/// organization's or an unknown one) or `websites_of` a pool user, 1 to 4 per page (0 and
/// 501, refused, now and then), by a mostly global key.
pub fn access_list_op(world: &World) -> impl Strategy<Value = Op> + use<> {
    let global = world.global_key();
    let mostly_global = prop_oneof![3 => Just(global), 1 => principal(world)];
    let limit = prop_oneof![1 => Just(0usize), 1 => Just(501usize), 14 => 1usize..=4];
    prop_oneof![
        2 => (mostly_global.clone(), targets(world, 1), limit.clone()).prop_map(
            |(principal, t, limit)| Op::MembersOf { principal, target: t[0], limit }
        ),
        1 => (mostly_global, pool_email(), limit).prop_map(|(principal, email, limit)| {
            Op::WebsitesOf { principal, email, limit }
        }),
    ]
}

/// An op of invariant 14: grants (direct adds; email invitations, delivered and accepted),
/// organization memberships, every change of [`access_change_op`], clock moves (so some
/// invitations expire) and the access lists.
pub fn access_op(world: &World) -> impl Strategy<Value = Op> + use<> {
    let orgs = vec![world.org, world.org, world.org, world.other_org];
    let global = world.global_key();
    let grant = (
        prop_oneof![4 => Just(global), 1 => principal(world)],
        bulk_request(world),
    )
        .prop_map(|(principal, request)| Op::Bulk {
            principal,
            request,
            idempotency_key: None,
        });
    prop_oneof![
        6 => grant,
        3 => (any::<usize>(), prop::option::weighted(0.2, pool_email()))
            .prop_map(|(token, signed_in)| Op::Accept { token, signed_in }),
        2 => (select(orgs), pool_email(), org_role()).prop_map(|(organization, email, role)| {
            Op::AddOrgMember { organization, email, role }
        }),
        1 => clock_move().prop_map(Op::Advance),
        8 => access_change_op(world),
        2 => access_list_op(world),
    ]
}

/// A sequence of 1 to `max` ops of [`access_op`], with a mailer that accepts everything (so
/// invitations come with tokens to accept).
pub fn access_ops(world: &World, max: usize) -> impl Strategy<Value = Vec<Op>> + use<> {
    prop::collection::vec(access_op(world), 0..max.max(1)).prop_map(|rest| {
        let mut v = vec![Op::SetMailer(MailerMode::Ok)];
        v.extend(rest);
        v
    })
}

/// A list op: by one of the world's targets, by a pool email, or by status; 0 (refused) to 5
/// per page, so that listings span pages.
pub fn list_op(world: &World) -> impl Strategy<Value = Op> + use<> {
    let global = world.global_key();
    let filter = prop_oneof![
        targets(world, 1).prop_map(|t| InvitationFilter::Target(t[0])),
        pool_email().prop_map(InvitationFilter::Email),
        select(vec![
            InvitationStatus::Pending,
            InvitationStatus::Accepted,
            InvitationStatus::Revoked,
            InvitationStatus::Expired,
            InvitationStatus::Superseded,
        ])
        .prop_map(InvitationFilter::Status),
    ];
    (
        prop_oneof![3 => Just(global), 1 => principal(world)],
        filter,
        prop_oneof![1 => Just(0usize), 12 => 1usize..=5],
    )
        .prop_map(|(principal, filter, limit)| Op::List {
            principal,
            filter,
            limit,
        })
}

/// A sequence of 1 to `max` ops, the first of which sets the mailer's mode.
pub fn ops(world: &World, max: usize) -> impl Strategy<Value = Vec<Op>> + use<> {
    let max = max.max(1);
    (mailer_mode(), prop::collection::vec(op(world), 0..max)).prop_map(|(mode, rest)| {
        let mut v = vec![Op::SetMailer(mode)];
        v.extend(rest);
        v
    })
}

/// A random starting state: up to 8 ops applied to a freshly seeded world before the
/// property under test runs (drivers reset the mailer to accepting afterwards if they need).
pub fn start_state(world: &World) -> impl Strategy<Value = Vec<Op>> + use<> {
    prop::collection::vec(op(world), 0..=8)
}

/// How a list field appears in a raw body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListField {
    /// The field is left out.
    Absent,
    /// The field is `null` (the same as absent).
    Null,
    /// The field is an array of this many distinct UUIDs.
    Ids(usize),
}

impl ListField {
    /// Whether the list counts as present.
    pub fn is_present(&self) -> bool {
        matches!(self, ListField::Ids(_))
    }
}

fn list_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1usize),
        Just(50usize),
        Just(51usize),
        0usize..=60
    ]
}

/// A raw JSON body with the given list fields. The ids of a list are distinct: the world's
/// own, the other organization's and random unknown ones, rotated by a random amount.
fn body(
    world: &World,
    websites: ListField,
    groups: ListField,
    method: InviteMethod,
    email: String,
    salt: u128,
) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("invite_method".into(), json!(method.as_str()));
    map.insert("email".into(), json!(email));
    let ids = |own: Vec<Uuid>, other: Uuid, n: usize, tag: u128| -> Value {
        let mut all = own;
        all.push(other);
        let mut k = 0u128;
        while all.len() < n {
            all.push(Uuid::from_u128(salt.wrapping_add(tag).wrapping_add(k)));
            k += 1;
        }
        let shift = usize::try_from(salt % 7).unwrap_or(0) % all.len().max(1);
        all.rotate_left(shift);
        all.truncate(n);
        Value::Array(all.into_iter().map(|u| json!(u.to_string())).collect())
    };
    let own_sites: Vec<Uuid> = world.websites.iter().map(|w| w.0).collect();
    let own_groups: Vec<Uuid> = world.groups.iter().map(|g| g.0).collect();
    match websites {
        ListField::Absent => {}
        ListField::Null => {
            map.insert("website_ids".into(), Value::Null);
        }
        ListField::Ids(n) => {
            map.insert(
                "website_ids".into(),
                ids(own_sites, world.other_website.0, n, 1 << 64),
            );
        }
    }
    match groups {
        ListField::Absent => {}
        ListField::Null => {
            map.insert("group_ids".into(), Value::Null);
        }
        ListField::Ids(n) => {
            map.insert(
                "group_ids".into(),
                ids(own_groups, world.other_group.0, n, 2 << 64),
            );
        }
    }
    Value::Object(map)
}

/// A raw body for invariant 1: both lists present (each 0 to 60 ids, even empty) or neither
/// (absent or `null`). Returns the body with its two list fields.
pub fn exclusivity_body(
    world: &World,
) -> impl Strategy<Value = (Value, ListField, ListField)> + use<> {
    let w = world.clone();
    let absent = prop_oneof![Just(ListField::Absent), Just(ListField::Null)];
    let fields = prop_oneof![
        (list_len(), list_len()).prop_map(|(a, b)| (ListField::Ids(a), ListField::Ids(b))),
        (absent.clone(), absent),
    ];
    (fields, method(), email_text(), any::<u128>())
        .prop_map(move |((a, b), m, e, salt)| (body(&w, a.clone(), b.clone(), m, e, salt), a, b))
}

/// A raw body for invariant 2: exactly one list present with 0 to 60 distinct ids (the
/// boundaries 0, 1, 50 and 51 often), the other absent or `null`.
pub fn bounds_body(world: &World) -> impl Strategy<Value = (Value, ListField, ListField)> + use<> {
    let w = world.clone();
    let absent = prop_oneof![Just(ListField::Absent), Just(ListField::Null)];
    let fields = prop_oneof![
        (list_len(), absent.clone()).prop_map(|(n, b)| (ListField::Ids(n), b)),
        (absent, list_len()).prop_map(|(a, n)| (a, ListField::Ids(n))),
    ];
    (fields, method(), email_text(), any::<u128>())
        .prop_map(move |((a, b), m, e, salt)| (body(&w, a.clone(), b.clone(), m, e, salt), a, b))
}

/// A request with `group_ids` and no `website_ids`, valid or not (empty, too long, repeated
/// ids, a bad email), for invariant 8.
pub fn group_request(world: &World) -> impl Strategy<Value = BulkInviteRequest> + use<> {
    let w = world.clone();
    (
        method(),
        prop_oneof![4 => email_text(), 1 => Just("not an email".to_owned())],
        role(),
        prop_oneof![
            4 => prop::collection::vec(group_id(&w), 1..=4),
            1 => Just(Vec::new()),
            1 => Just(vec![w.groups[0].0; 2]),
            1 => (51u128..=55).prop_map(|n| (0..n).map(|i| Uuid::from_u128(0x7000 + i)).collect()),
        ],
        name(),
    )
        .prop_map(|(m, e, r, ids, f)| BulkInviteRequest {
            invite_method: m,
            email: e,
            role: r,
            website_ids: None,
            group_ids: Some(ids.into_iter().map(GroupId).collect()),
            first_name: f,
            last_name: None,
        })
}

/// Cases per property: `default`, or more when the `PROPTEST_CASES` environment variable asks
/// for more (it never lowers the count below what CI promises).
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(default, |c: u32| c.max(default))
}
