//! What an operator sees, over a full run on SQLite: bulk requests in both modes (one
//! idempotent and replayed), revoke, resend, accept, a refused token, failures the service
//! swallows, delivery with a retry, and the purge. Every span, event and metric is captured
//! (a `tracing` layer of this file, the `metrics` debugging recorder), then checked: the spans
//! of docs/contract.md §14 with their parents, the counters with their values, and no address (in any
//! spelling), name, token, link, idempotency key or error message anywhere.

use invites::core::observe::describe_metrics;
use invites::core::{
    AcceptToken, BulkInviteRequest, InvitationFilter, InviteMethod, InviteService, MailerMode,
    OutcomeCode, Principal, RecordingMailer, WebsiteId,
};
use invites::sqlite::SqliteStore;
use invites_testkit::{Fault, FaultyStore, Harness, ManualClock, World};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One captured span: its name, its parent (an index into the captured spans) and its fields
/// as they were when the run ended.
#[derive(Clone, Debug)]
struct SpanRec {
    name: &'static str,
    parent: Option<usize>,
    fields: BTreeMap<String, String>,
}

/// One captured event: level, message and other fields, and the span it happened in.
#[derive(Clone, Debug)]
struct EventRec {
    level: tracing::Level,
    span: Option<usize>,
    fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct Captured {
    spans: Vec<SpanRec>,
    events: Vec<EventRec>,
}

/// A layer that keeps every span (with its parent and fields) and every event.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Captured>>);

/// The index of a span in [`Captured::spans`], kept in the span's extensions (span ids are
/// reused once a span closes; indexes are not).
struct Index(usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a new span is registered");
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<Index>().map(|i| i.0));
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut c = self.0.lock().unwrap();
        c.spans.push(SpanRec {
            name: attrs.metadata().name(),
            parent,
            fields,
        });
        span.extensions_mut().insert(Index(c.spans.len() - 1));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a recorded span is registered");
        let ext = span.extensions();
        let index = ext.get::<Index>().expect("indexed at creation").0;
        values.record(&mut Fields(&mut self.0.lock().unwrap().spans[index].fields));
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let span = ctx
            .event_span(event)
            .and_then(|s| s.extensions().get::<Index>().map(|i| i.0));
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().events.push(EventRec {
            level: *event.metadata().level(),
            span,
            fields,
        });
    }
}

/// Every spelling of `address` a careless log line could hold: as typed, lowercased, the
/// normal form (A-label domain), the U-label form, each percent-encoded, and the local part.
fn spellings(address: &str) -> Vec<String> {
    let normal = invites::core::Email::parse(address).expect("a valid address");
    let local = normal.as_str().split('@').next().unwrap().to_owned();
    let unicode = format!("{local}@{}", normal.domain_unicode());
    let mut all = vec![
        address.to_owned(),
        address.to_lowercase(),
        normal.as_str().to_owned(),
        unicode.clone(),
        local,
        normal.domain().to_owned(),
        normal.domain_unicode(),
    ];
    for s in [address.to_owned(), normal.as_str().to_owned(), unicode] {
        all.push(percent_encode(&s));
        all.push(percent_encode(&s).to_lowercase());
    }
    all.sort();
    all.dedup();
    all
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn tokens_in(mailer: &RecordingMailer) -> Vec<String> {
    mailer
        .sent()
        .iter()
        .map(|m| {
            let start = m.text.find("token=").expect("a link") + "token=".len();
            m.text[start..start + 64].to_owned()
        })
        .collect()
}

const EMAIL_INVITEE: &str = "  Zoë.Quintero-Obs@Bücher-Obs.Example ";
const DIRECT_INVITEE: &str = "Direct.Person-Obs@Example-Obs.COM";
const QUEUED_INVITEE: &str = "Queued-Obs@MÜNCHEN-obs.example";
const FIRST_NAME: &str = "Yolandë";
const LAST_NAME: &str = "Marchetti-Quill";
const IDEMPOTENCY_KEY: &str = "obs-idem-key-4711";
const TRACE_SECRET: &[u8] = b"the host's trace key, 32 bytes.";

fn request(
    method: InviteMethod,
    email: &str,
    sites: impl IntoIterator<Item = WebsiteId>,
) -> BulkInviteRequest {
    let mut r = BulkInviteRequest::websites(method, email, sites);
    r.first_name = Some(FIRST_NAME.into());
    r.last_name = Some(LAST_NAME.into());
    r
}

/// One metric as the recorder holds it: name, labels, value.
type Metric = (String, Vec<(String, String)>, DebugValue);

/// What the run left for the checks.
struct Run {
    captured: Captured,
    metrics: Vec<Metric>,
    secrets: Vec<String>,
}

/// The whole run, under the capturing layer and the debugging recorder, on one thread.
fn run() -> Run {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut secrets: Vec<String> = Vec::new();

    tracing::subscriber::with_default(subscriber, || {
        metrics::with_local_recorder(&recorder, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                describe_metrics();
                let sqlite = SqliteStore::open(dir.path().join("obs.db"))
                    .await
                    .expect("store");
                let world = World::seed(&sqlite).await;
                let faulty = FaultyStore::new(Arc::new(sqlite));
                let clock = ManualClock::standard();
                let mailer = RecordingMailer::new_ok();
                let config = Harness::config(&clock, 21)
                    .with_trace_key(TRACE_SECRET)
                    .expect("a long enough secret");
                let service =
                    InviteService::new(Arc::new(faulty.clone()), Arc::new(mailer.clone()), config);
                let key: Principal = world.global_key();
                let sites = &world.websites;

                // Email mode, idempotent, then replayed.
                let invite = request(InviteMethod::Email, EMAIL_INVITEE, [sites[0], sites[1]]);
                let first = service
                    .bulk_invite_idempotent(&key, IDEMPOTENCY_KEY, invite.clone())
                    .await
                    .expect("email mode");
                assert_eq!(first.summary.succeeded, 2);
                let replay = service
                    .bulk_invite_idempotent(&key, IDEMPOTENCY_KEY, invite)
                    .await
                    .expect("replay");
                assert_eq!(replay, first);
                let batch = first.email.unwrap().batch_id.unwrap();

                // Direct mode: one added, one unknown website.
                let unknown = WebsiteId(uuid::Uuid::from_u128(0xdead));
                let direct = service
                    .bulk_invite(
                        &key,
                        request(InviteMethod::Direct, DIRECT_INVITEE, [sites[2], unknown]),
                    )
                    .await
                    .expect("direct mode");
                assert_eq!(direct.results[0].code, OutcomeCode::Added);
                assert_eq!(direct.results[1].code, OutcomeCode::TargetNotFound);

                // Revoke one invitation of the batch, resend the batch, accept the new link.
                let revoked = first.results[0].invite_id.unwrap();
                assert!(service.revoke(&key, revoked).await.unwrap().changed);
                clock.advance(Duration::from_secs(61));
                service.resend(&key, batch).await.expect("resend");
                let link = tokens_in(&mailer).pop().unwrap();
                service.preview(&link).await.expect("preview");
                let accepted = service.accept(&link, None).await.expect("accept");
                let codes: Vec<OutcomeCode> =
                    accepted.results.iter().map(|r| r.result.code).collect();
                assert_eq!(codes, [OutcomeCode::Revoked, OutcomeCode::Added]);
                let refused = service.accept(&"0".repeat(64), None).await.unwrap_err();
                assert_eq!(refused.code().as_str(), "invalid_token");
                service.batch(&key, batch).await.expect("batch view");
                let email = invites::core::Email::parse(EMAIL_INVITEE).unwrap();
                service
                    .list_invitations(&key, InvitationFilter::Email(email), 10, None)
                    .await
                    .expect("list");

                // Swallowed failures: a target whose unit fails, then a store that fails.
                faulty.set(Fault {
                    failing_targets: [invites::core::TargetId::Website(sites[4])].into(),
                    ..Fault::default()
                });
                let partial = service
                    .bulk_invite(
                        &key,
                        request(InviteMethod::Direct, DIRECT_INVITEE, [sites[3], sites[4]]),
                    )
                    .await
                    .unwrap();
                assert_eq!(partial.results[1].code, OutcomeCode::InternalError);
                faulty.set(Fault {
                    fail_everything_else: true,
                    ..Fault::default()
                });
                assert!(service.revoke(&key, revoked).await.is_err());
                faulty.set(Fault::default());

                // Delivery: queued while the mailer fails, retried, then sent.
                mailer.set_mode(MailerMode::FailTransient);
                let queued = service
                    .bulk_invite(
                        &key,
                        request(InviteMethod::Email, QUEUED_INVITEE, [sites[5]]),
                    )
                    .await
                    .unwrap();
                assert_eq!(
                    queued.email.unwrap().status,
                    invites::core::EmailStatus::Queued
                );
                clock.advance(Duration::from_secs(31));
                let retried = service.deliver_due().await.unwrap();
                assert_eq!(retried.retried, 1);
                mailer.set_mode(MailerMode::Ok);
                clock.advance(Duration::from_secs(3600));
                let sent = service.deliver_due().await.unwrap();
                assert_eq!(sent.sent, 1);

                // Forty days on, the purge deletes the dead batches and old idempotency records.
                clock.advance(Duration::from_secs(40 * 86_400));
                let purged = service.purge_expired().await.unwrap();
                assert!(purged.batches >= 2, "{purged:?}");
                assert_eq!(purged.idempotency_records, 1);

                // Every secret the run used: tokens (and their hashes), links, the key, the
                // injected error's message.
                for m in mailer.sent() {
                    let start = m.text.find("https://").unwrap();
                    let end = start + m.text[start..].find(char::is_whitespace).unwrap();
                    secrets.push(m.text[start..end].to_owned());
                }
                for t in tokens_in(&mailer) {
                    let hash = AcceptToken::from_link(&t).unwrap().hash();
                    secrets.push(format!("{hash:?}"));
                    secrets.push(hash.0.iter().map(|b| format!("{b:02x}")).collect());
                    secrets.push(t);
                }
            });
        })
    });

    for address in [EMAIL_INVITEE, DIRECT_INVITEE, QUEUED_INVITEE] {
        secrets.extend(spellings(address.trim()));
        secrets.push(address.to_owned());
    }
    for name in [FIRST_NAME, LAST_NAME] {
        secrets.extend([name.to_owned(), name.to_lowercase(), percent_encode(name)]);
    }
    secrets.extend([IDEMPOTENCY_KEY.to_owned(), "injected fault".to_owned()]);
    secrets.push(String::from_utf8_lossy(TRACE_SECRET).into_owned());

    let metrics = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.name().to_owned(), labels, value)
        })
        .collect();
    let captured = std::mem::take(&mut *capture.0.lock().unwrap());
    Run {
        captured,
        metrics,
        secrets,
    }
}

const OPERATIONS: [&str; 10] = [
    "bulk_invite",
    "bulk_invite_idempotent",
    "preview",
    "accept",
    "revoke",
    "resend",
    "batch",
    "list_invitations",
    "deliver_due",
    "purge_expired",
];

impl Run {
    fn spans(&self, name: &str) -> Vec<&SpanRec> {
        self.captured
            .spans
            .iter()
            .filter(|s| s.name == name)
            .collect()
    }

    fn parent(&self, span: &SpanRec) -> Option<&SpanRec> {
        span.parent.map(|p| &self.captured.spans[p])
    }

    /// The spans named `name` whose parent is named `parent`.
    fn under(&self, name: &str, parent: &str) -> Vec<&SpanRec> {
        self.spans(name)
            .into_iter()
            .filter(|s| self.parent(s).is_some_and(|p| p.name == parent))
            .collect()
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.metrics
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| match v {
                DebugValue::Counter(c) => *c,
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .sum()
    }

    fn gauge(&self, name: &str) -> f64 {
        self.metrics
            .iter()
            .find_map(|(n, _, v)| match v {
                DebugValue::Gauge(g) if n == name => Some(g.into_inner()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no gauge {name}"))
    }

    fn histogram_len(&self, name: &str, labels: &[(&str, &str)]) -> usize {
        self.metrics
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| match v {
                DebugValue::Histogram(h) => h.len(),
                other => panic!("{name} is not a histogram: {other:?}"),
            })
            .sum()
    }
}

#[test]
fn a_full_run_shows_its_spans_and_metrics_and_no_personal_data_or_secret() {
    let run = run();

    // One span per call of each public operation, each with its outcome and duration.
    for op in OPERATIONS {
        let spans = run.spans(op);
        assert!(!spans.is_empty(), "no {op} span");
        for s in spans.iter().filter(|s| run.parent(s).is_none()) {
            assert!(s.fields.contains_key("outcome"), "{op}: {s:?}");
            assert!(s.fields.contains_key("duration_seconds"), "{op}: {s:?}");
        }
    }
    let idem = run.spans("bulk_invite_idempotent");
    assert_eq!(idem.len(), 2);
    let f = &idem[0].fields;
    assert_eq!(f["method"], "email");
    assert_eq!(f["targets"], "2");
    assert_eq!(f["succeeded"], "2");
    assert_eq!(f["failed"], "0");
    assert_eq!(f["email"], "sent");
    assert_eq!(f["outcome"], "ok");
    assert!(!f.contains_key("replayed"));
    assert_eq!(idem[1].fields["replayed"], "true");
    // The invitee is a keyed hash: 16 hex digits, the same for both requests of one address.
    let invitee = &f["invitee"];
    assert_eq!(invitee.len(), 16);
    assert!(invitee.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(&idem[1].fields["invitee"], invitee);
    let direct = run.spans("bulk_invite");
    assert_eq!(direct[0].fields["method"], "direct");
    assert_eq!(direct[0].fields["succeeded"], "1");
    assert_eq!(direct[0].fields["failed"], "1");
    assert_ne!(&direct[0].fields["invitee"], invitee);
    assert_eq!(run.spans("accept")[0].fields["succeeded"], "1");
    assert_eq!(run.spans("accept")[1].fields["outcome"], "invalid_token");
    assert_eq!(run.spans("list_invitations")[0].fields["filter"], "email");
    let revokes = run.spans("revoke");
    assert_eq!(revokes[1].fields["outcome"], "storage_unavailable");
    let passes = run.spans("deliver_due");
    assert_eq!(passes[0].fields["retried"], "1");
    assert_eq!(passes[1].fields["sent"], "1");
    assert_eq!(passes[1].fields["queued"], "0");
    assert_eq!(
        run.spans("purge_expired")[0].fields["idempotency_records"],
        "1"
    );

    // Store calls are child spans of their operation, named after the port method, with
    // `db.system.name`; a failed one names its error's kind.
    for (store, op) in [
        ("idempotency_begin", "bulk_invite_idempotent"),
        ("create_invitations", "bulk_invite_idempotent"),
        ("idempotency_finish", "bulk_invite_idempotent"),
        ("add_members", "bulk_invite"),
        ("get_invitation", "revoke"),
        ("revoke_invitation", "revoke"),
        ("rotate_batch", "resend"),
        ("find_batch_by_token", "preview"),
        ("accept_batch", "accept"),
        ("batch_messages", "batch"),
        ("list_invitations", "list_invitations"),
        ("claim_due_messages", "deliver_due"),
        ("outbox_backlog", "deliver_due"),
        ("purge_batches", "purge_expired"),
        ("purge_messages", "purge_expired"),
        ("purge_idempotency", "purge_expired"),
        ("get_batch", "deliver"),
        ("record_delivery", "deliver"),
    ] {
        assert!(!run.under(store, op).is_empty(), "no {store} under {op}");
    }
    let store_spans: Vec<&SpanRec> = run
        .captured
        .spans
        .iter()
        .filter(|s| s.fields.contains_key("db.system.name"))
        .collect();
    assert!(store_spans.len() > 20);
    for s in &store_spans {
        assert_eq!(s.fields["db.system.name"], "sqlite", "{s:?}");
        let parent = run.parent(s).expect("a store span has a parent").name;
        assert!(
            OPERATIONS.contains(&parent) || parent == "deliver",
            "{} under {parent}",
            s.name
        );
    }
    let failed = run.under("get_invitation", "revoke");
    assert_eq!(failed.last().unwrap().fields["error.type"], "unavailable");
    // Each delivered message has its own span, under the pass or the request that sent it.
    for (op, result) in [
        ("bulk_invite_idempotent", "sent"),
        ("resend", "sent"),
        ("deliver_due", "retried"),
        ("deliver_due", "sent"),
    ] {
        assert!(
            run.under("deliver", op)
                .iter()
                .any(|s| s.fields["result"] == result),
            "no deliver {result} under {op}"
        );
    }

    // Every swallowed store error is a warning with its step and kind, in its operation.
    let warnings: Vec<&EventRec> = run
        .captured
        .events
        .iter()
        .filter(|e| e.level == tracing::Level::WARN)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].fields["what"], "target unit");
    assert_eq!(warnings[0].fields["error.type"], "unavailable");
    let in_span = &run.captured.spans[warnings[0].span.expect("in a span")];
    assert_eq!(in_span.name, "bulk_invite");

    // The counters.
    let requests = "invites_requests_total";
    for (op, outcome, n) in [
        ("bulk_invite_idempotent", "ok", 2),
        ("bulk_invite", "ok", 3),
        ("revoke", "ok", 1),
        ("revoke", "storage_unavailable", 1),
        ("resend", "ok", 1),
        ("preview", "ok", 1),
        ("accept", "ok", 1),
        ("accept", "invalid_token", 1),
        ("batch", "ok", 1),
        ("list_invitations", "ok", 1),
        ("deliver_due", "ok", 2),
        ("purge_expired", "ok", 1),
    ] {
        let labels = [("operation", op), ("outcome", outcome)];
        assert_eq!(run.counter(requests, &labels), n, "{op} {outcome}");
    }
    assert_eq!(run.counter(requests, &[]), 16);
    let targets = "invites_targets_total";
    for (method, code, n) in [
        ("email", "invited", 3),
        ("direct", "added", 2),
        ("direct", "target_not_found", 1),
        ("direct", "internal_error", 1),
        ("accept", "added", 1),
        ("accept", "revoked", 1),
    ] {
        let labels = [("method", method), ("code", code)];
        assert_eq!(run.counter(targets, &labels), n, "{method} {code}");
    }
    assert_eq!(run.counter(targets, &[]), 9, "the replay counts no target");
    let attempts = "invites_delivery_attempts_total";
    assert_eq!(run.counter(attempts, &[("result", "sent")]), 3);
    assert_eq!(run.counter(attempts, &[("result", "retried")]), 2);
    assert_eq!(run.counter(attempts, &[]), 5);
    assert_eq!(run.gauge("invites_outbox_queued_messages"), 0.0);
    assert_eq!(run.gauge("invites_outbox_oldest_queued_age_seconds"), 0.0);
    let purged = "invites_purged_records_total";
    assert_eq!(run.counter(purged, &[("kind", "idempotency_records")]), 1);
    assert!(run.counter(purged, &[("kind", "batches")]) >= 2);
    let errors = [("method", "get_invitation"), ("kind", "unavailable")];
    assert_eq!(run.counter("invites_store_errors_total", &errors), 1);
    let dropped = [("what", "target unit"), ("kind", "unavailable")];
    assert_eq!(run.counter("invites_dropped_errors_total", &dropped), 1);
    let duration = "invites_request_duration_seconds";
    assert_eq!(run.histogram_len(duration, &[("operation", "accept")]), 2);
    assert_eq!(run.histogram_len(duration, &[]), 16);
    let store_duration = "invites_store_call_duration_seconds";
    assert!(run.histogram_len(store_duration, &[("method", "create_invitations")]) >= 2);
    assert_eq!(run.histogram_len(store_duration, &[]), store_spans.len());
    // Names follow `invites_<thing>_<unit>`.
    for (name, _, value) in &run.metrics {
        let unit_ok = match value {
            DebugValue::Counter(_) => name.ends_with("_total"),
            DebugValue::Histogram(_) => name.ends_with("_seconds"),
            DebugValue::Gauge(_) => name.ends_with("_messages") || name.ends_with("_seconds"),
        };
        assert!(name.starts_with("invites_") && unit_ok, "{name}");
    }

    // No address in any spelling, no name, token, token hash, link, idempotency key, trace
    // secret or error message, in any span name, field, event or metric label.
    let mut haystack: Vec<String> = Vec::new();
    for s in &run.captured.spans {
        haystack.push(s.name.to_owned());
        haystack.extend(s.fields.iter().map(|(k, v)| format!("{k}={v}")));
    }
    for e in &run.captured.events {
        haystack.extend(e.fields.iter().map(|(k, v)| format!("{k}={v}")));
    }
    for (name, labels, _) in &run.metrics {
        haystack.push(name.clone());
        haystack.extend(labels.iter().map(|(k, v)| format!("{k}={v}")));
    }
    let haystack = haystack.join("\n");
    let lowered = haystack.to_lowercase();
    assert!(run.secrets.len() > 40, "{}", run.secrets.len());
    for secret in &run.secrets {
        assert!(
            !haystack.contains(secret.as_str()) && !lowered.contains(&secret.to_lowercase()),
            "{secret:?} was captured"
        );
    }
}
