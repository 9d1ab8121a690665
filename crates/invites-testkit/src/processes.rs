//! Child processes for the tests that run the library in several OS processes on one database
//! and kill them mid-write (SQLite's `tests/sqlite_processes.rs`, PostgreSQL's
//! `tests/processes.rs`).
//!
//! The children are the test binary itself, re-run for one ignored test ([`child_command`])
//! with their instructions in environment variables ([`child_var`]). A writer child logs
//! every response it got as one JSON line ([`log_responses`]), so the parent can check that
//! what a caller was told is true of the database, whatever happened to the process; the
//! parent reads the lines back with [`read_logged`] and kills a writer after a random amount
//! of progress with [`kill_at_random`].

use crate::SeededRandom;
use crate::World;
use crate::workload::pick;
use invites_core::{BulkInviteRequest, BulkInviteResponse, InviteService};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// One response a writer child got, as it logs it: the address it asked for and what the
/// service answered.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoggedResponse {
    /// The request's address, as sent (in the case it was drawn in).
    pub email: String,
    /// The service's answer.
    pub response: BulkInviteResponse,
}

/// A command that runs only the ignored test `test` of this test binary, on one thread,
/// quietly: its standard output is dropped, its standard error goes to the parent's. The
/// caller adds the child's environment and spawns it.
///
/// # Panics
/// If the path of the running test binary cannot be had.
#[must_use]
pub fn child_command(test: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--ignored", "--exact", test, "--test-threads=1", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

/// A current-thread tokio runtime with I/O and time, for a process test's parent and for
/// each child (one process, one runtime).
///
/// # Panics
/// If the runtime cannot be built.
#[must_use]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// An instruction the parent left for a child in the environment variable `name`.
///
/// # Panics
/// If the variable is not set (or not Unicode): the child was not started by its parent.
#[must_use]
pub fn child_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by the parent"))
}

/// A writer child's work: `ops` requests from `request`, each sent as the world's global key
/// and its response appended to `log` as one JSON line once the call returned (so a line is
/// only ever a response a caller could have seen).
///
/// # Panics
/// If the log cannot be opened or written, or a request is refused as a whole (a healthy
/// store processes every request).
pub async fn log_responses(
    service: &InviteService,
    world: &World,
    log: &Path,
    ops: usize,
    mut request: impl FnMut() -> BulkInviteRequest,
) {
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    for _ in 0..ops {
        let request = request();
        let email = request.email.clone();
        let response = service
            .bulk_invite(&world.global_key(), request)
            .await
            .expect("processed");
        let line = serde_json::to_string(&LoggedResponse { email, response }).expect("json");
        out.write_all(format!("{line}\n").as_bytes()).expect("log");
    }
}

/// Every whole line of the file at `path`; none if there is no such file.
#[must_use]
pub fn read_lines(path: &Path) -> Vec<String> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .collect()
}

/// The responses a writer logged to `log`. A line cut by a kill does not parse and is left
/// out: it was never a complete response.
#[must_use]
pub fn read_logged(log: &Path) -> Vec<LoggedResponse> {
    read_lines(log)
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Kills `child`, a writer logging to `log`, with SIGKILL at a random moment, and waits for
/// it: after it logged a random number of responses below `most_lines`, or when that number
/// is 0, after a random number (below 40) of 1 ms polls, during start-up. So the kill lands at
/// a random point of a random transaction. Returns how the child ended (it may have ended by
/// itself first).
///
/// # Panics
/// If the child cannot be polled, killed or waited for.
pub fn kill_at_random(
    child: &mut Child,
    log: &Path,
    rng: &SeededRandom,
    most_lines: usize,
) -> ExitStatus {
    let wait_for = pick(rng, most_lines);
    let mut polls = pick(rng, 40);
    loop {
        if child.try_wait().expect("poll").is_some() {
            break;
        }
        let lines = std::fs::read(log)
            .map(|b| b.iter().filter(|c| **c == b'\n').count())
            .unwrap_or(0);
        if (wait_for == 0 && polls == 0) || (wait_for > 0 && lines >= wait_for) {
            break;
        }
        polls = polls.saturating_sub(1);
        std::thread::sleep(Duration::from_millis(1)); // polling the child's progress
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait")
}

/// Invariant 11 after a crash: every committed change of the crash tests' workload (bulk
/// requests and their inline deliveries; nothing is ever removed there) has its event, and no
/// event lacks its change. `events` is the organization's whole log (positions must be
/// 1..=`counter` with no gap), `snapshot` the store afterwards, `seeded` the users the world
/// created before the workload (they have no event).
///
/// # Panics
/// On the first mismatch, naming it.
pub fn check_events(
    events: &[invites_core::Event],
    counter: u64,
    snapshot: &invites_core::Snapshot,
    seeded: &[invites_core::UserId],
) {
    use invites_core::{EventKind, MessageStatus, StoredStatus};
    use std::collections::BTreeSet;
    let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
    assert_eq!(
        positions,
        (1..=counter).collect::<Vec<_>>(),
        "positions 1..={counter} with no gap: a committed call without its events, or events without their call"
    );
    let of = |kind: EventKind| events.iter().filter(move |e| e.kind == kind);
    let exactly_once = |what: &str, from_events: Vec<String>, from_rows: Vec<String>| {
        let distinct: BTreeSet<&String> = from_events.iter().collect();
        assert_eq!(distinct.len(), from_events.len(), "{what}: an event twice");
        let rows: BTreeSet<&String> = from_rows.iter().collect();
        assert_eq!(distinct, rows, "{what}: events and rows differ");
    };
    exactly_once(
        "memberships",
        of(EventKind::MemberAdded)
            .map(|e| format!("{:?} {:?}", e.target, e.user))
            .collect(),
        snapshot
            .memberships
            .iter()
            .map(|m| format!("{:?} {:?}", Some(m.target), Some(m.user)))
            .collect(),
    );
    exactly_once(
        "invitations",
        of(EventKind::InvitationCreated)
            .map(|e| format!("{:?}", e.invitation))
            .collect(),
        snapshot
            .invitations
            .iter()
            .map(|i| format!("{:?}", Some(i.id)))
            .collect(),
    );
    exactly_once(
        "superseded invitations",
        of(EventKind::InvitationSuperseded)
            .map(|e| format!("{:?}", e.invitation))
            .collect(),
        snapshot
            .invitations
            .iter()
            .filter(|i| i.status == StoredStatus::Superseded)
            .map(|i| format!("{:?}", Some(i.id)))
            .collect(),
    );
    exactly_once(
        "users",
        of(EventKind::UserCreated)
            .map(|e| format!("{:?}", e.user))
            .collect(),
        snapshot
            .users
            .iter()
            .filter(|u| !seeded.contains(&u.id))
            .map(|u| format!("{:?}", Some(u.id)))
            .collect(),
    );
    exactly_once(
        "sent messages",
        of(EventKind::EmailSent)
            .map(|e| format!("{:?}", e.message))
            .collect(),
        snapshot
            .outbox
            .iter()
            .filter(|m| m.status == MessageStatus::Sent)
            .map(|m| format!("{:?}", Some(m.id)))
            .collect(),
    );
    exactly_once(
        "failed messages",
        of(EventKind::EmailFailed)
            .map(|e| format!("{:?}", e.message))
            .collect(),
        snapshot
            .outbox
            .iter()
            .filter(|m| m.status == MessageStatus::Failed)
            .map(|m| format!("{:?}", Some(m.id)))
            .collect(),
    );
}
