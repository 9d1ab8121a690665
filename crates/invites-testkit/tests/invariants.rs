//! docs/contract.md §9 invariants 1 to 9, one proptest each, over random starting states of the seeded
//! world in the in-memory backend.

use invites_core::*;
use invites_memory::MemoryStore;
use invites_testkit::differential::{Driver, Op};
use invites_testkit::differential::{runtime, seeded_memory};
use invites_testkit::model::world_target_name;
use invites_testkit::strategies::cases;
use invites_testkit::strategies::{
    ListField, bounds_body, bulk_request, exclusivity_body, group_request, principal, request_to,
    scoped_principal, standard_world, start_state,
};
use invites_testkit::{Fault, FaultyStore, Harness, World};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const SEED: u64 = 42;
const CASES: u32 = 512;

/// A seeded in-memory store brought into a random starting state by `setup`, and the driver
/// (service, mailer reset to accepting, clock) that did it.
async fn start(setup: &[Op]) -> (MemoryStore, Driver) {
    seeded_memory(setup, SEED).await
}

/// A service over an independent copy of `store`, at time `now`.
fn harness_on(store: &MemoryStore, now: Timestamp) -> Harness {
    let h = Harness::with_seed(Arc::new(store.fork()), SEED + 1);
    h.clock.set(now);
    h
}

async fn snapshot(store: &MemoryStore) -> Snapshot {
    store.snapshot().await.expect("snapshot")
}

/// The targets of a request, in request order.
fn target_ids(req: &BulkInviteRequest) -> Vec<TargetId> {
    match (&req.website_ids, &req.group_ids) {
        (Some(w), _) => w.iter().map(|id| TargetId::Website(*id)).collect(),
        (None, Some(g)) => g.iter().map(|id| TargetId::Group(*id)).collect(),
        (None, None) => Vec::new(),
    }
}

fn is_group_request_with_scoped_key(req: &BulkInviteRequest, p: &Principal) -> bool {
    req.group_ids.is_some() && req.website_ids.is_none() && !p.is_global()
}

/// The rows a target's unit may touch: memberships of the target held by the user with the
/// email, and invitations of (target, email).
fn rows_of(
    s: &Snapshot,
    target: TargetId,
    email: &Email,
) -> (Vec<MembershipRow>, Vec<InvitationRecord>) {
    let users: Vec<UserId> = s
        .users
        .iter()
        .filter(|u| u.email == *email)
        .map(|u| u.id)
        .collect();
    (
        s.memberships
            .iter()
            .filter(|m| m.target == target && users.contains(&m.user))
            .cloned()
            .collect(),
        s.invitations
            .iter()
            .filter(|i| i.target == target && i.email == *email)
            .cloned()
            .collect(),
    )
}

/// The target names the plain text part of a message lists, with their roles.
fn listed_targets(message: &EmailMessage) -> Vec<(String, String)> {
    message
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("  - "))
        .filter_map(|l| {
            let (name, rest) = l.rsplit_once(" (")?;
            let role = rest.trim_end_matches(')').rsplit(", ").next()?;
            Some((name.to_owned(), role.to_owned()))
        })
        .collect()
}

fn names(world: &World, targets: &[TargetId]) -> BTreeSet<String> {
    targets
        .iter()
        .map(|t| world_target_name(world, *t).expect("invited targets exist"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(CASES)))]

    /// 1. Both lists or neither: the right error, no state change, no email.
    #[test]
    fn invariant_1_exclusivity(
        setup in start_state(&standard_world()),
        (body, websites, groups) in exclusivity_body(&standard_world()),
        p in principal(&standard_world()),
        idempotent in any::<bool>(),
    ) {
        runtime().block_on(async {
            let (store, d) = start(&setup).await;
            let svc = &d.harness.service;
            let before = snapshot(&store).await;
            let mails = d.harness.mailer.sent().len();
            let req = BulkInviteRequest::from_value(body).expect("well-formed body");
            let expected = if websites.is_present() && groups.is_present() {
                ErrorCode::MutuallyExclusiveTargets
            } else {
                prop_assert!(!websites.is_present() && !groups.is_present());
                ErrorCode::MissingTargets
            };
            let r = if idempotent {
                svc.bulk_invite_idempotent(&p, "inv-1", req.clone()).await
            } else {
                svc.bulk_invite(&p, req.clone()).await
            };
            prop_assert_eq!(r.err().map(|e| e.code()), Some(expected));
            prop_assert_eq!(&snapshot(&store).await, &before);
            prop_assert_eq!(d.harness.mailer.sent().len(), mails);
            if idempotent {
                // The rejected request was not recorded: the key is still free.
                let ok = BulkInviteRequest::websites(
                    InviteMethod::Direct, "free@example.com", [d.world.websites[0]]);
                let r = svc.bulk_invite_idempotent(&d.world.global_key(), "inv-1", ok).await;
                prop_assert!(r.is_ok(), "{:?}", r.err());
            }
            Ok(())
        })?;
    }

    /// 2. 0 or more than 50 ids: rejected with `invalid_target_count`, nothing changed;
    /// 1 to 50: processed.
    #[test]
    fn invariant_2_bounds(
        setup in start_state(&standard_world()),
        (body, websites, groups) in bounds_body(&standard_world()),
        p in principal(&standard_world()),
    ) {
        runtime().block_on(async {
            let (store, d) = start(&setup).await;
            let before = snapshot(&store).await;
            let mails = d.harness.mailer.sent().len();
            let req = BulkInviteRequest::from_value(body).expect("well-formed body");
            let n = match (&websites, &groups) {
                (ListField::Ids(n), _) | (_, ListField::Ids(n)) => *n,
                _ => unreachable!("one list is present"),
            };
            prop_assert_eq!(target_ids(&req).len(), n);
            let r = d.harness.service.bulk_invite(&p, req.clone()).await;
            let expected = if is_group_request_with_scoped_key(&req, &p) {
                Some(ErrorCode::GlobalKeyRequired)
            } else if n == 0 || n > 50 {
                Some(ErrorCode::InvalidTargetCount)
            } else {
                None
            };
            match (r, expected) {
                (Ok(resp), None) => {
                    prop_assert_eq!(resp.results.len(), n);
                    prop_assert_eq!(resp.summary.requested, n);
                }
                (Err(e), Some(code)) => {
                    prop_assert_eq!(e.code(), code);
                    prop_assert_eq!(&snapshot(&store).await, &before);
                    prop_assert_eq!(d.harness.mailer.sent().len(), mails);
                }
                (r, expected) => prop_assert!(false, "n = {}: got {:?}, expected {:?}", n, r, expected),
            }
            Ok(())
        })?;
    }

    /// 3. One result per requested id, in request order, naming that id in the matching field.
    #[test]
    fn invariant_3_one_result_per_id_in_order(
        setup in start_state(&standard_world()),
        req in bulk_request(&standard_world()),
        p in principal(&standard_world()),
    ) {
        runtime().block_on(async {
            let (_store, d) = start(&setup).await;
            let ids = target_ids(&req);
            let resp = match d.harness.service.bulk_invite(&p, req.clone()).await {
                Ok(r) => r,
                Err(e) => {
                    prop_assert!(is_group_request_with_scoped_key(&req, &p));
                    prop_assert_eq!(e.code(), ErrorCode::GlobalKeyRequired);
                    return Ok(());
                }
            };
            prop_assert!(resp.success);
            prop_assert_eq!(resp.invite_method, req.invite_method);
            prop_assert_eq!(resp.results.len(), ids.len());
            for (r, id) in resp.results.iter().zip(&ids) {
                prop_assert_eq!(r.target(), *id);
                match id {
                    TargetId::Website(w) => {
                        prop_assert_eq!(r.website_id, Some(*w));
                        prop_assert_eq!(r.group_id, None);
                    }
                    TargetId::Group(g) => {
                        prop_assert_eq!(r.group_id, Some(*g));
                        prop_assert_eq!(r.website_id, None);
                    }
                }
                prop_assert_eq!(r.success, r.code.is_success());
                prop_assert_eq!(r.message.is_some(), r.success);
                prop_assert_eq!(r.error.is_some(), !r.success);
            }
            let ok = resp.results.iter().filter(|r| r.success).count();
            prop_assert_eq!(resp.summary, Summary { requested: ids.len(), succeeded: ok, failed: ids.len() - ok });
            Ok(())
        })?;
    }

    /// 4. Each target's outcome equals that of a single-target request for it from the same
    /// starting state.
    #[test]
    fn invariant_4_independence(
        setup in start_state(&standard_world()),
        req in bulk_request(&standard_world()),
        p in principal(&standard_world()),
    ) {
        runtime().block_on(async {
            let (store, d) = start(&setup).await;
            let now = d.harness.clock.now();
            let base = store.fork();
            let ids = target_ids(&req);
            let Ok(resp) = d.harness.service.bulk_invite(&p, req.clone()).await else {
                prop_assert!(is_group_request_with_scoped_key(&req, &p));
                return Ok(());
            };
            for (i, t) in ids.iter().enumerate() {
                let single = request_to(
                    req.invite_method, req.email.clone(), req.role, &[*t],
                    req.first_name.clone(), req.last_name.clone(),
                );
                let h = harness_on(&base, now);
                let alone = h.service.bulk_invite(&p, single).await.expect("valid");
                prop_assert_eq!(
                    alone.results[0].code, resp.results[i].code,
                    "target {} ({:?}) of {:?}", i, t, req
                );
            }
            Ok(())
        })?;
    }

    /// 5. A failed target's rows are unchanged; a successful one has exactly the membership
    /// or invitation reported.
    #[test]
    fn invariant_5_partial_failure(
        setup in start_state(&standard_world()),
        req in bulk_request(&standard_world()),
        p in principal(&standard_world()),
    ) {
        runtime().block_on(async {
            let (store, d) = start(&setup).await;
            let now = d.harness.clock.now();
            let before = snapshot(&store).await;
            let Ok(resp) = d.harness.service.bulk_invite(&p, req.clone()).await else {
                prop_assert!(is_group_request_with_scoped_key(&req, &p));
                return Ok(());
            };
            let after = snapshot(&store).await;
            let email = Email::parse(&req.email).expect("valid");
            let role = req.role.unwrap_or_default();
            for r in &resp.results {
                let t = r.target();
                let (m0, i0) = rows_of(&before, t, &email);
                let (m1, i1) = rows_of(&after, t, &email);
                match r.code {
                    OutcomeCode::Added => {
                        let uid = r.user_id.expect("added names the user");
                        prop_assert_eq!(Some(uid), resp.user_id);
                        prop_assert!(m0.is_empty());
                        prop_assert_eq!(
                            m1, vec![MembershipRow { target: t, user: uid, role, created_at: now }]
                        );
                        // Invitations: the pending one (live or expired, if any)
                        // superseded, nothing else.
                        prop_assert_eq!(i0.len(), i1.len());
                        for (a, b) in i0.iter().zip(&i1) {
                            let mut expected = a.clone();
                            if a.status == StoredStatus::Pending {
                                expected.status = StoredStatus::Superseded;
                            }
                            prop_assert_eq!(&expected, b);
                        }
                    }
                    OutcomeCode::Invited => {
                        let id = r.invite_id.expect("invited names the invitation");
                        prop_assert_eq!(m0, m1);
                        let new: Vec<&InvitationRecord> =
                            i1.iter().filter(|x| !i0.iter().any(|y| y.id == x.id)).collect();
                        prop_assert_eq!(new.len(), 1);
                        let inv = new[0];
                        prop_assert_eq!(inv.id, id);
                        prop_assert_eq!(inv.status, StoredStatus::Pending);
                        prop_assert!(inv.is_live(now));
                        prop_assert_eq!(inv.role, role);
                        prop_assert_eq!(Some(inv.batch_id), resp.email.and_then(|e| e.batch_id));
                        // Older rows: at most an expired pending one marked expired.
                        for old in &i0 {
                            let now_row = i1.iter().find(|x| x.id == old.id).expect("kept");
                            if old != now_row {
                                prop_assert!(old.status == StoredStatus::Pending && !old.is_live(now));
                                prop_assert_eq!(now_row.status, StoredStatus::Replaced);
                            }
                        }
                    }
                    _ => {
                        prop_assert!(!r.success);
                        prop_assert_eq!(m0, m1);
                        prop_assert_eq!(i0, i1);
                    }
                }
            }
            Ok(())
        })?;
    }

    /// 6. One message per email-mode request that invited something, listing exactly the
    /// invited targets; none in direct mode or when nothing was invited.
    #[test]
    fn invariant_6_one_email_per_invite(
        setup in start_state(&standard_world()),
        req in bulk_request(&standard_world()),
        p in principal(&standard_world()),
    ) {
        runtime().block_on(async {
            let (store, d) = start(&setup).await;
            let before = snapshot(&store).await;
            let mails = d.harness.mailer.sent().len();
            let Ok(resp) = d.harness.service.bulk_invite(&p, req.clone()).await else {
                prop_assert!(is_group_request_with_scoped_key(&req, &p));
                return Ok(());
            };
            let after = snapshot(&store).await;
            let new_rows: Vec<&OutboxMessage> = after
                .outbox
                .iter()
                .filter(|m| !before.outbox.iter().any(|o| o.id == m.id))
                .collect();
            let sent = d.harness.mailer.sent();
            let new_mails = &sent[mails..];
            let invited: Vec<TargetId> = resp
                .results
                .iter()
                .filter(|r| r.code == OutcomeCode::Invited)
                .map(|r| r.target())
                .collect();
            let email = Email::parse(&req.email).expect("valid");
            if req.invite_method == InviteMethod::Email && !invited.is_empty() {
                let report = resp.email.expect("email mode reports the email");
                prop_assert_eq!(report.status, EmailStatus::Sent);
                prop_assert_eq!(new_rows.len(), 1);
                prop_assert_eq!(Some(new_rows[0].batch_id), report.batch_id);
                prop_assert_eq!(new_mails.len(), 1);
                let m = &new_mails[0];
                prop_assert_eq!(m.id, new_rows[0].id);
                prop_assert_eq!(&m.to, &email);
                let listed = listed_targets(m);
                let listed_names: BTreeSet<String> = listed.iter().map(|(n, _)| n.clone()).collect();
                prop_assert_eq!(listed.len(), invited.len());
                prop_assert_eq!(listed_names, names(&d.world, &invited));
                let role = req.role.unwrap_or_default();
                prop_assert!(listed.iter().all(|(_, r)| r == role.as_str()));
            } else {
                prop_assert!(new_rows.is_empty());
                prop_assert!(new_mails.is_empty());
                match req.invite_method {
                    InviteMethod::Email => prop_assert_eq!(
                        resp.email,
                        Some(EmailReport { status: EmailStatus::NotSent, batch_id: None })
                    ),
                    InviteMethod::Direct => prop_assert_eq!(resp.email, None),
                }
            }
            Ok(())
        })?;
    }

    /// 7. A user is created only in direct mode, only if none existed, only if a target
    /// succeeded, always unverified.
    #[test]
    fn invariant_7_user_creation(
        setup in start_state(&standard_world()),
        req in bulk_request(&standard_world()),
        p in principal(&standard_world()),
    ) {
        runtime().block_on(async {
            let (store, d) = start(&setup).await;
            let before = snapshot(&store).await;
            let Ok(resp) = d.harness.service.bulk_invite(&p, req.clone()).await else {
                prop_assert!(is_group_request_with_scoped_key(&req, &p));
                return Ok(());
            };
            let after = snapshot(&store).await;
            let email = Email::parse(&req.email).expect("valid");
            let existed = before.users.iter().find(|u| u.email == email).cloned();
            let added = resp.results.iter().any(|r| r.code == OutcomeCode::Added);
            if req.invite_method == InviteMethod::Direct && existed.is_none() && added {
                let new: Vec<&User> = after.users.iter().filter(|u| !before.users.contains(u)).collect();
                prop_assert_eq!(new.len(), 1);
                let u = new[0];
                prop_assert_eq!(&u.email, &email);
                prop_assert!(!u.email_verified);
                let name = |n: &Option<String>| n.as_deref().and_then(|s| PersonName::parse(s).expect("valid"));
                prop_assert_eq!(&u.first_name, &name(&req.first_name));
                prop_assert_eq!(&u.last_name, &name(&req.last_name));
                prop_assert_eq!(resp.user_id, Some(u.id));
                prop_assert!(resp.user_created);
                prop_assert_eq!(after.users.len(), before.users.len() + 1);
            } else {
                prop_assert_eq!(&after.users, &before.users);
                prop_assert!(!resp.user_created);
                // docs/contract.md §4 tenancy: named only when an outcome relates the user to the org.
                let related = resp.results.iter().any(|r| {
                    r.success
                        || matches!(r.code, OutcomeCode::AlreadyMember | OutcomeCode::HasOrgAccess)
                });
                prop_assert_eq!(resp.user_id, existed.filter(|_| related).map(|u| u.id));
            }
            Ok(())
        })?;
    }

    /// 8. `group_ids` with a website-scoped key: `global_key_required`, nothing changed.
    #[test]
    fn invariant_8_group_permission(
        setup in start_state(&standard_world()),
        req in group_request(&standard_world()),
        p in scoped_principal(&standard_world()),
        idempotent in any::<bool>(),
    ) {
        runtime().block_on(async {
            let (store, d) = start(&setup).await;
            let svc = &d.harness.service;
            let before = snapshot(&store).await;
            let mails = d.harness.mailer.sent().len();
            let r = if idempotent {
                svc.bulk_invite_idempotent(&p, "inv-8", req).await
            } else {
                svc.bulk_invite(&p, req).await
            };
            let e = r.expect_err("a scoped key cannot invite to groups");
            prop_assert_eq!(e.code(), ErrorCode::GlobalKeyRequired);
            let is_forbidden = matches!(e, InviteError::Forbidden { .. });
            prop_assert!(is_forbidden, "{:?}", e);
            prop_assert_eq!(&snapshot(&store).await, &before);
            prop_assert_eq!(d.harness.mailer.sent().len(), mails);
            Ok(())
        })?;
    }

    /// 9. A store failing on some targets makes exactly those `internal_error` (the ones the
    /// key reaches; the others never reach the store); every other target is as if no fault
    /// happened, and a failed target leaves no trace. A store whose whole batch fails (the
    /// commit) fails every target it is asked about and changes nothing.
    #[test]
    fn invariant_9_faults(
        setup in start_state(&standard_world()),
        req in bulk_request(&standard_world()),
        p in principal(&standard_world()),
        failing_mask in prop::collection::vec(any::<bool>(), 6),
        whole_batch in prop::bool::weighted(0.15),
    ) {
        runtime().block_on(async {
            let (store, d) = start(&setup).await;
            let now = d.harness.clock.now();
            let base = store.fork();
            let ids = target_ids(&req);
            // A failing commit fails every target the store is asked about.
            let failing: BTreeSet<TargetId> = ids
                .iter()
                .zip(&failing_mask)
                .filter(|(_, f)| whole_batch || **f)
                .map(|(t, _)| *t)
                .collect();
            let faulty = FaultyStore::new(Arc::new(store.clone()));
            faulty.set(if whole_batch {
                Fault { fail_batches: true, ..Fault::default() }
            } else {
                Fault { failing_targets: failing.clone(), ..Fault::default() }
            });
            let mails = d.harness.mailer.sent().len();
            let h = Harness::with_seed(Arc::new(faulty), SEED + 2);
            h.clock.set(now);
            let before = snapshot(&store).await;
            let with_faults = h.service.bulk_invite(&p, req.clone()).await;
            let reference = harness_on(&base, now).service.bulk_invite(&p, req.clone()).await;
            let (with_faults, reference) = match (with_faults, reference) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(a), Err(b)) => {
                    prop_assert_eq!(a.code(), b.code());
                    return Ok(());
                }
                (a, b) => {
                    prop_assert!(false, "{:?} vs {:?}", a, b);
                    unreachable!()
                }
            };
            let after = snapshot(&store).await;
            if whole_batch {
                prop_assert_eq!(&after, &before);
                prop_assert_eq!(h.mailer.sent().len() + d.harness.mailer.sent().len(), mails);
                prop_assert!(!with_faults.user_created);
            }
            let email = Email::parse(&req.email).expect("valid");
            let codes: BTreeMap<TargetId, OutcomeCode> =
                reference.results.iter().map(|r| (r.target(), r.code)).collect();
            for r in &with_faults.results {
                let t = r.target();
                if failing.contains(&t) && p.reaches(t) {
                    prop_assert_eq!(r.code, OutcomeCode::InternalError, "{:?}", t);
                    prop_assert_eq!(rows_of(&before, t, &email), rows_of(&after, t, &email));
                } else {
                    prop_assert_ne!(r.code, OutcomeCode::InternalError);
                    prop_assert_eq!(Some(&r.code), codes.get(&t), "{:?}", t);
                }
            }
            Ok(())
        })?;
    }
}
