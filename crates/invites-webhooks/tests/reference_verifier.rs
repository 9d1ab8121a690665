//! Our signatures, checked by the Standard Webhooks reference library for Python
//! (`standardwebhooks` from PyPI), not by our own code: what a receiver would run.
//!
//! Needs a Python that imports `standardwebhooks`: set `INVITES_WEBHOOKS_PYTHON` to it
//! (`.ci/steps/webhooks-python.sh` makes one). Without it the test prints one `skipped:` line,
//! or fails when `INVITES_REQUIRE_SERVERS=1`.

mod support;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use invites_webhooks::{WebhookSecret, sign};
use std::io::Write;
use std::process::{Command, Stdio};
use support::{now_secs, python};

/// Reads cases as JSON lines on stdin; for each, verifies with every secret it names and
/// prints `ok` or `refused` on one line. A receiver holds one secret, so each is tried alone.
const VERIFIER: &str = r#"
import base64, json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
for line in sys.stdin:
    case = json.loads(line)
    body = base64.b64decode(case["body"])
    headers = {"webhook-id": case["id"], "webhook-timestamp": case["timestamp"],
               "webhook-signature": case["signature"]}
    results = []
    for secret in case["secrets"]:
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
            results.append("ok")
        except WebhookVerificationError:
            results.append("refused")
    print(" ".join(results), flush=True)
"#;

struct Case {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    secrets: Vec<String>,
}

fn json_line(c: &Case) -> String {
    let secrets: Vec<String> = c.secrets.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "{{\"id\":\"{}\",\"timestamp\":\"{}\",\"signature\":\"{}\",\"body\":\"{}\",\"secrets\":[{}]}}\n",
        c.id,
        c.timestamp,
        c.signature,
        STANDARD.encode(&c.body),
        secrets.join(",")
    )
}

fn verify_all(python: &str, cases: &[Case]) -> Vec<String> {
    let mut child = Command::new(python)
        .args(["-c", VERIFIER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the Python verifier");
    let mut stdin = child.stdin.take().unwrap();
    for c in cases {
        stdin.write_all(json_line(c).as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the verifier failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_reference_library_verifies_every_signature_and_refuses_altered_ones() {
    let Some(python) = python() else { return };
    let now = now_secs();
    let old = WebhookSecret::from_bytes((0u8..24).collect()).unwrap();
    let new = WebhookSecret::from_bytes((100u8..164).collect()).unwrap();
    let stranger = WebhookSecret::from_bytes(vec![9; 32]).unwrap();
    let bodies: [&[u8]; 3] = [
        br#"{"type":"member_added","position":1}"#,
        "{\"type\":\"invitation_accepted\",\"note\":\"caf\u{e9} \u{1f600}\"}".as_bytes(),
        b"",
    ];
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for (n, body) in bodies.iter().enumerate() {
        // One secret, then a rotation holding both: each secret alone verifies.
        for secrets in [vec![old.clone()], vec![old.clone(), new.clone()]] {
            let h = sign(&format!("msg_{n}"), now, body, &secrets).unwrap();
            cases.push(Case {
                id: h.id.clone(),
                timestamp: h.timestamp.clone(),
                signature: h.signature.clone(),
                body: body.to_vec(),
                secrets: secrets.iter().map(WebhookSecret::expose).collect(),
            });
            expected.push(vec!["ok"; secrets.len()].join(" "));
            // Altered body, altered id, a secret the signer did not use: refused.
            let mut altered = body.to_vec();
            altered.push(b' ');
            cases.push(Case {
                id: h.id.clone(),
                timestamp: h.timestamp.clone(),
                signature: h.signature.clone(),
                body: altered,
                secrets: vec![old.expose()],
            });
            expected.push("refused".into());
            cases.push(Case {
                id: format!("{}x", h.id),
                timestamp: h.timestamp.clone(),
                signature: h.signature.clone(),
                body: body.to_vec(),
                secrets: vec![old.expose()],
            });
            expected.push("refused".into());
            cases.push(Case {
                id: h.id,
                timestamp: h.timestamp,
                signature: h.signature,
                body: body.to_vec(),
                secrets: vec![stranger.expose()],
            });
            expected.push("refused".into());
        }
    }
    // An empty signature is refused by the verifier a receiver runs, too.
    cases.push(Case {
        id: "msg_empty".into(),
        timestamp: now.to_string(),
        signature: "v1,".into(),
        body: b"{}".to_vec(),
        secrets: vec![old.expose()],
    });
    expected.push("refused".into());
    assert_eq!(verify_all(&python, &cases), expected);
}
