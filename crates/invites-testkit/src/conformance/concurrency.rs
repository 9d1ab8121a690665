//! Concurrency: the uniqueness rules under racing requests.

use super::support::*;
use crate::Backend;
use invites_core::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Overlapping direct and email requests for the same addresses and websites, run
/// concurrently on one service, keep the uniqueness rules: one user per email, one membership
/// per (target, user), one pending invitation per (target, email), no pending invitation
/// beside a membership, and every `added`/`invited` result is a stored row (and vice versa).
pub async fn concurrent_invites_keep_uniqueness(backend: Arc<dyn Backend>) {
    let (w, h) = setup(&backend, 147).await;
    let p = w.global_key();
    let ws: Vec<WebsiteId> = w.websites[0..3].to_vec();
    let spellings = [
        ["race@one.test", "Race@One.test", " RACE@one.test "],
        ["race@two.test", "Race@Two.Test", "race@TWO.test "],
    ];
    let mut tasks = Vec::new();
    for i in 0..8usize {
        let service = h.service.clone();
        let p = p.clone();
        let ws = ws.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for round in 0..3usize {
                // Tasks 2k and 2k+1 share an address; each alternates direct and email
                // mode out of step with its partner, so both modes race on every pair.
                let who = (i / 2) % 2;
                let (method, n) = if (i + round) % 2 == 0 {
                    (ByEmail, 2)
                } else {
                    (Direct, 3)
                };
                let targets: Vec<WebsiteId> = (0..n).map(|k| ws[(i + round + k) % 3]).collect();
                let to = spellings[who][(i + round) % 3];
                let resp = service
                    .bulk_invite(&p, sites(method, to, &targets))
                    .await
                    .expect("processed");
                out.push((spellings[who][0], resp));
                tokio::task::yield_now().await;
            }
            out
        }));
    }
    let mut responses = Vec::new();
    for t in tasks {
        responses.extend(t.await.expect("task"));
    }
    let s = snapshot(&backend).await;

    let mut added: BTreeMap<(TargetId, &str), usize> = BTreeMap::new();
    let mut invited: BTreeMap<(TargetId, &str), usize> = BTreeMap::new();
    let mut added_count = 0;
    let mut invited_count = 0;
    let mut mails = 0;
    for (to, resp) in &responses {
        let u = user(&s, to);
        // A message is sent for every batch, unless a concurrent direct add superseded all
        // of its invitations before delivery: then it is cancelled and reported `not_sent`.
        match resp.email {
            Some(e) if e.status == EmailStatus::Sent => mails += 1,
            Some(EmailReport {
                status: EmailStatus::NotSent,
                batch_id: Some(b),
            }) => {
                assert!(
                    s.invitations
                        .iter()
                        .filter(|i| i.batch_id == b)
                        .all(|i| i.status == StoredStatus::Superseded),
                    "batch {b} was not mailed although an invitation of it is alive"
                );
            }
            _ => {}
        }
        for r in &resp.results {
            assert!(
                matches!(
                    r.code,
                    OutcomeCode::Added | Invited | AlreadyMember | AlreadyInvited
                ),
                "{r:?}"
            );
            match r.code {
                OutcomeCode::Added => {
                    added_count += 1;
                    *added.entry((r.target(), to)).or_default() += 1;
                    let u = u.expect("an added user exists");
                    assert_eq!(r.user_id, Some(u.id));
                    assert!(membership(&s, r.target(), u.id).is_some(), "{r:?}");
                }
                OutcomeCode::Invited => {
                    invited_count += 1;
                    *invited.entry((r.target(), to)).or_default() += 1;
                    let inv = invitation(&s, r.invite_id.expect("id"));
                    assert_eq!(inv.target, r.target());
                    assert_eq!(inv.email, email(to));
                }
                _ => {}
            }
        }
    }
    assert!(
        added.values().all(|n| *n == 1),
        "one add per pair: {added:?}"
    );
    assert!(
        invited.values().all(|n| *n == 1),
        "one invitation per pair: {invited:?}"
    );
    assert_eq!(s.memberships.len(), added_count, "no unreported membership");
    assert_eq!(
        s.invitations.len(),
        invited_count,
        "no unreported invitation"
    );
    assert_eq!(h.mailer.sent().len(), mails);

    for to in ["race@one.test", "race@two.test"] {
        assert_eq!(users_with(&s, to), 1, "exactly one user for {to}");
        let uid = user(&s, to).expect("user").id;
        for t in &ws {
            assert!(membership(&s, web(*t), uid).is_some());
            assert_eq!(
                stored_pending(&s, web(*t), to),
                0,
                "a membership supersedes or prevents the invitation"
            );
        }
    }
    let pairs: BTreeSet<(TargetId, UserId)> =
        s.memberships.iter().map(|m| (m.target, m.user)).collect();
    assert_eq!(pairs.len(), s.memberships.len(), "one membership per pair");
    let mut pending: BTreeMap<(TargetId, &Email), usize> = BTreeMap::new();
    for i in &s.invitations {
        if i.status == StoredStatus::Pending {
            *pending.entry((i.target, &i.email)).or_default() += 1;
        }
    }
    assert!(pending.values().all(|n| *n <= 1), "{pending:?}");
}
