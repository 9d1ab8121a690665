//! Deliveries to a real receiver: a Python HTTP server that verifies every request with the
//! Standard Webhooks reference library and answers, in turn, 200, 500, 429 with `Retry-After`,
//! nothing (past the sender's timeout), 410 and a redirect. (A thread per request, so the
//! request after the slow one is answered while the slow one still sleeps.)
//!
//! Needs `INVITES_WEBHOOKS_PYTHON` (a Python with `standardwebhooks`; `.ci/steps/webhooks-python.sh`);
//! without it, one `skipped:` line (a failure with `INVITES_REQUIRE_SERVERS=1`).

mod support;
use invites_webhooks::{Attempt, EndpointUrl, Failure, Reach, WebhookSecret, WebhookSender};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{now_secs, python};

const RECEIVER: &str = r#"
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
secret, answers = sys.argv[1], sys.argv[2].split(",")
class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
            verdict = "verified"
        except WebhookVerificationError:
            verdict = "refused"
        print(verdict, headers.get("webhook-id"), headers.get("content-type"), flush=True)
        answer = answers.pop(0)
        if answer.startswith("sleep:"):
            time.sleep(float(answer[6:]))
            answer = "200"
        code, _, retry_after = answer.partition(":")
        self.send_response(int(code))
        if retry_after:
            self.send_header("Retry-After", retry_after)
        if code.startswith("3"):
            self.send_header("Location", "http://example.com/")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("port", server.server_address[1], flush=True)
server.serve_forever()
"#;

/// Kills the receiver when the test ends, passing or not.
struct Receiver(Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

#[tokio::test]
async fn each_answer_of_a_real_receiver_is_sorted_and_every_delivery_verifies() {
    let Some(python) = python() else { return };
    let secret = WebhookSecret::from_bytes((1u8..=32).collect()).unwrap();
    let answers = ["200", "500", "429:7", "sleep:3", "410", "301"];
    let mut receiver = Receiver(
        Command::new(python)
            .args(["-c", RECEIVER, &secret.expose(), &answers.join(",")])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Python receiver"),
    );
    let mut lines = BufReader::new(receiver.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port = first.strip_prefix("port ").expect("the receiver's port");
    let endpoint = EndpointUrl::parse(
        &format!("http://127.0.0.1:{port}/hook"),
        Reach::AllowPrivate,
    )
    .unwrap();
    let sender = WebhookSender::new(Reach::AllowPrivate, Duration::from_secs(1)).unwrap();
    let now = now_secs();
    let mut attempts = Vec::new();
    for n in 0..answers.len() {
        let body = format!(r#"{{"type":"member_added","position":{n}}}"#).into_bytes();
        let attempt = sender
            .send(
                &endpoint,
                std::slice::from_ref(&secret),
                &format!("msg_{n}"),
                now,
                body,
            )
            .await
            .unwrap();
        attempts.push(attempt);
    }
    let failed = |cause, retry_after| Attempt::Failed { cause, retry_after };
    assert_eq!(
        attempts,
        [
            Attempt::Delivered { status: 200 },
            failed(Failure::Status(500), None),
            failed(Failure::Status(429), Some(Duration::from_secs(7))),
            failed(Failure::Timeout, None),
            Attempt::Gone,
            failed(Failure::Redirect(301), None),
        ]
    );
    // The receiver saw each delivery once, verified, as JSON.
    let seen: Vec<String> = (0..answers.len())
        .map(|_| lines.next().unwrap().unwrap())
        .collect();
    drop(receiver);
    let expected: Vec<String> = (0..answers.len())
        .map(|n| format!("verified msg_{n} application/json"))
        .collect();
    assert_eq!(seen, expected);
}
