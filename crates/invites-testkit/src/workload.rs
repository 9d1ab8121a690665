//! Random bulk requests for the tests that run the library in several tasks or processes at
//! once (SQLite's `tests/sqlite_processes.rs`, PostgreSQL's `tests/processes.rs`): the same
//! draws from the same seed on every backend.

use crate::{SeededRandom, World};
use invites_core::{BulkInviteRequest, InviteMethod, RandomSource};
use std::collections::BTreeSet;

/// A number below `n` drawn from `rng`.
///
/// # Panics
/// If `n` is zero.
#[must_use]
pub fn pick(rng: &SeededRandom, n: usize) -> usize {
    let mut b = [0u8; 8];
    rng.fill(&mut b);
    usize::try_from(u64::from_le_bytes(b) % n as u64).expect("below n, which is a usize")
}

/// The `n`-th address of a pool: `user{n}@example.test`. A small pool makes requests collide
/// on the same person; a large one makes nearly every request write.
#[must_use]
pub fn pool_email(n: usize) -> String {
    format!("user{n}@example.test")
}

/// A random request over `world`: one in five to one of its groups, the others to 1 to 4
/// websites drawn from its first `websites` (fewer for more overlap), either mode, an address
/// of a pool of `pool` in random case.
#[must_use]
pub fn random_request(
    rng: &SeededRandom,
    world: &World,
    pool: usize,
    websites: usize,
) -> BulkInviteRequest {
    let email = pool_email(pick(rng, pool));
    let email = if pick(rng, 2) == 0 {
        email.to_uppercase()
    } else {
        email
    };
    let method = if pick(rng, 2) == 0 {
        InviteMethod::Direct
    } else {
        InviteMethod::Email
    };
    if pick(rng, 5) == 0 {
        return BulkInviteRequest::groups(
            method,
            &email,
            [world.groups[pick(rng, world.groups.len())]],
        );
    }
    let mut ids = BTreeSet::new();
    for _ in 0..1 + pick(rng, 4) {
        ids.insert(world.websites[pick(rng, websites)]);
    }
    BulkInviteRequest::websites(method, &email, ids)
}
