//! What the webhook tests share: the Python with the Standard Webhooks reference library, and
//! the time the reference library accepts.

/// The variable naming a Python that imports `standardwebhooks`.
pub(crate) const PYTHON_VAR: &str = "INVITES_WEBHOOKS_PYTHON";

/// The Python of [`PYTHON_VAR`]; without it, prints one `skipped:` line and gives `None`.
///
/// # Panics
/// Without it when `INVITES_REQUIRE_SERVERS=1` (CI), so a skip cannot pass for a run.
pub(crate) fn python() -> Option<String> {
    match std::env::var(PYTHON_VAR) {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var("INVITES_REQUIRE_SERVERS").as_deref() != Ok("1"),
                "INVITES_REQUIRE_SERVERS=1 but {PYTHON_VAR} is not set"
            );
            println!("skipped: set {PYTHON_VAR} to a Python with standardwebhooks");
            None
        }
    }
}

/// Seconds since the Unix epoch now: the reference library refuses a `webhook-timestamp`
/// more than five minutes from its own clock.
#[allow(dead_code)] // not every test binary signs by hand
pub(crate) fn now_secs() -> u64 {
    use invites_core::Clock;
    u64::try_from(invites_core::SystemClock.now().as_millis() / 1000).expect("after 1970")
}
