//! docs/contract.md §9 invariant 10: the same random sequence of operations gives the same answers, the
//! same mails and the same state on every backend as on the reference model.

use invites_testkit::Backend;
use invites_testkit::differential::run_differential;
use invites_testkit::differential::runtime;
use invites_testkit::strategies::cases;
use invites_testkit::strategies::{ops, standard_world};
use proptest::prelude::*;
use std::sync::Arc;

/// The backends under test, each fresh and empty. Add a backend with one line.
fn backends() -> Vec<(&'static str, Arc<dyn Backend>)> {
    vec![("memory", Arc::new(invites_memory::MemoryStore::new()))]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1024)))]

    #[test]
    fn invariant_10_backends_agree(ops in ops(&standard_world(), 30)) {
        let result = runtime().block_on(run_differential(&ops, backends()));
        if let Err(d) = result {
            return Err(TestCaseError::fail(d.to_string()));
        }
    }
}
