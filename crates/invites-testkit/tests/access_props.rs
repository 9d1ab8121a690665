//! docs/contract.md §9 invariants 12 (erasure) and 14 (access), over random sequences of grants and
//! removals in the seeded world.

use invites_core::*;
use invites_testkit::Backend;
use invites_testkit::differential::{run_differential, runtime, seeded_memory};
use invites_testkit::strategies::{access_ops, cases, email_text, standard_world};
use proptest::prelude::*;
use std::sync::Arc;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// Invariant 14: after every step of a random sequence of grants (direct adds, accepted
    /// invitations, organization memberships) and removals (member removals and role
    /// changes, organization changes, group links taken out or put in, groups deleted,
    /// people erased), `access(user, website)` of every user and website of the world is the
    /// strongest path the reference model derives, with every path (the differential run
    /// compares them, see `invites_testkit::differential`).
    #[test]
    fn invariant_14_access_is_the_strongest_path(ops in access_ops(&standard_world(), 30)) {
        let backends: Vec<(&str, Arc<dyn Backend>)> =
            vec![("memory", Arc::new(invites_memory::MemoryStore::new()))];
        if let Err(d) = runtime().block_on(run_differential(&ops, backends)) {
            return Err(TestCaseError::fail(d.to_string()));
        }
    }

    /// Invariant 12: after `erase_person` (the address in any spelling) in a random state, no
    /// stored value of the snapshot holds the address or the erased user's id, the user
    /// reaches no website, and a second erasure finds nothing.
    #[test]
    fn invariant_12_erasure_leaves_nothing_of_the_person(
        setup in access_ops(&standard_world(), 20),
        spelling in email_text(),
    ) {
        runtime().block_on(async {
            let (store, driver) = seeded_memory(&setup, 12).await;
            let address = Email::parse(&spelling).expect("a pool address");
            let user = store.find_user(&address).await.expect("read").map(|u| u.id);
            let report = driver
                .harness
                .service
                .erase_person(&spelling)
                .await
                .expect("erase");
            prop_assert_eq!(report.user, user);
            let stored = serde_json::to_string(&store.snapshot().await.expect("snapshot"))
                .expect("serializes")
                .to_lowercase();
            prop_assert!(!stored.contains(address.as_str()), "the address is gone");
            if let Some(u) = user {
                prop_assert!(!stored.contains(&u.0.to_string()), "the user id is gone");
                for w in driver.world.websites.iter().chain([&driver.world.other_website]) {
                    let access = driver.harness.service.access(u, *w).await.expect("access");
                    prop_assert_eq!(access, None);
                }
            }
            let again = driver
                .harness
                .service
                .erase_person(&spelling)
                .await
                .expect("erase again");
            prop_assert_eq!(again, ErasureReport::default());
            Ok(())
        })?;
    }
}
