//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the bytes of a `whsec_` secret.

use crate::WebhookError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

/// The prefix of a secret's text form, as the specification writes it.
const PREFIX: &str = "whsec_";
/// The specification's bounds on a secret's length, in bytes.
const MIN_BYTES: usize = 24;
const MAX_BYTES: usize = 64;

/// An endpoint's signing secret: 24 to 64 random bytes, written `whsec_<base64>`.
///
/// It never prints: `Debug` shows `WebhookSecret(..)`. [`WebhookSecret::expose`] gives the text
/// form for showing it once to the host that registers the endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// Parses `whsec_<base64 of 24 to 64 bytes>`.
    ///
    /// # Errors
    /// [`WebhookError`] (field `secret`) without the prefix, with text that is not standard
    /// base64, or with fewer than 24 or more than 64 bytes. The message never quotes the text.
    pub fn parse(text: &str) -> Result<Self, WebhookError> {
        let encoded = text
            .strip_prefix(PREFIX)
            .ok_or(WebhookError::new("secret", "does not start with whsec_"))?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| WebhookError::new("secret", "is not base64 after whsec_"))?;
        Self::from_bytes(bytes)
    }

    /// A secret of these bytes.
    ///
    /// # Errors
    /// [`WebhookError`] (field `secret`) for fewer than 24 or more than 64 bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, WebhookError> {
        if !(MIN_BYTES..=MAX_BYTES).contains(&bytes.len()) {
            return Err(WebhookError::new(
                "secret",
                "must hold 24 to 64 bytes (Standard Webhooks)",
            ));
        }
        Ok(Self(bytes))
    }

    /// A new secret of 32 bytes drawn from `random` (the service's [`RandomSource`]).
    ///
    /// [`RandomSource`]: invites_core::RandomSource
    #[must_use]
    pub fn generate(random: &dyn invites_core::RandomSource) -> Self {
        let mut bytes = vec![0u8; 32];
        random.fill(&mut bytes);
        Self(bytes)
    }

    /// The text form, `whsec_<base64>`, to show the host once.
    #[must_use]
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The `v1,<base64>` signature of one message with this secret.
    fn sign(&self, content: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(content);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// The headers of one delivery: `webhook-id`, `webhook-timestamp` and `webhook-signature`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`: the message's id, the same on every retry, so a receiver can dedupe.
    pub id: String,
    /// `webhook-timestamp`: seconds since the Unix epoch when this attempt was signed.
    pub timestamp: String,
    /// `webhook-signature`: one `v1,<base64>` per secret, separated by spaces, so a receiver
    /// holding either the old or the new secret of a rotation verifies it.
    pub signature: String,
}

impl SignedHeaders {
    /// The three headers as (name, value) pairs, in the specification's names.
    #[must_use]
    pub fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            ("webhook-id", &self.id),
            ("webhook-timestamp", &self.timestamp),
            ("webhook-signature", &self.signature),
        ]
    }
}

/// Signs `body` as message `id` at `timestamp` (seconds since the Unix epoch) with every
/// secret in `secrets`.
///
/// # Errors
/// [`WebhookError`] (field `secrets`) when there is none; (field `id`) for an empty id or one
/// with characters that cannot stand in a header (anything but visible ASCII).
pub fn sign(
    id: &str,
    timestamp: u64,
    body: &[u8],
    secrets: &[WebhookSecret],
) -> Result<SignedHeaders, WebhookError> {
    if secrets.is_empty() {
        return Err(WebhookError::new("secrets", "needs at least one secret"));
    }
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WebhookError::new(
            "id",
            "must be non-empty visible ASCII (it is a header value)",
        ));
    }
    let timestamp = timestamp.to_string();
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    let signature = secrets
        .iter()
        .map(|s| s.sign(&content))
        .collect::<Vec<_>>()
        .join(" ");
    Ok(SignedHeaders {
        id: id.to_owned(),
        timestamp,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector the Standard Webhooks libraries pin (the Python reference library's
    /// `Webhook.sign` gives the same).
    #[test]
    fn the_specifications_test_vector() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let headers = sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
            &[secret],
        )
        .unwrap();
        assert_eq!(
            headers.signature,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(headers.timestamp, "1614265330");
        assert_eq!(headers.id, "msg_p5jXN8AQM9LWM0D4loKWxJek");
    }

    #[test]
    fn several_secrets_give_one_signature_each_in_order() {
        let old = WebhookSecret::from_bytes(vec![1; 24]).unwrap();
        let new = WebhookSecret::from_bytes(vec![2; 32]).unwrap();
        let both = sign("msg_1", 5, b"{}", &[old.clone(), new.clone()]).unwrap();
        let first = sign("msg_1", 5, b"{}", &[old]).unwrap();
        let second = sign("msg_1", 5, b"{}", &[new]).unwrap();
        assert_eq!(
            both.signature,
            format!("{} {}", first.signature, second.signature)
        );
        assert_ne!(first.signature, second.signature);
    }

    #[test]
    fn the_signature_covers_the_id_the_timestamp_and_every_byte_of_the_body() {
        let s = [WebhookSecret::from_bytes(vec![7; 32]).unwrap()];
        let base = sign("msg_1", 100, b"{\"a\":1}", &s).unwrap().signature;
        for other in [
            sign("msg_2", 100, b"{\"a\":1}", &s),
            sign("msg_1", 101, b"{\"a\":1}", &s),
            sign("msg_1", 100, b"{\"a\":2}", &s),
            sign("msg_1", 100, b"{\"a\":1} ", &s),
        ] {
            assert_ne!(other.unwrap().signature, base);
        }
    }

    #[test]
    fn bad_secrets_are_refused_naming_the_field_and_not_the_value() {
        for text in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
            &format!("whsec_{}", STANDARD.encode([0u8; 65])),
        ] {
            let e = WebhookSecret::parse(text).unwrap_err();
            assert_eq!(e.field, "secret");
            assert!(!e.to_string().contains(text.trim_start_matches(PREFIX)));
        }
    }

    #[test]
    fn a_secret_never_prints_and_round_trips_through_its_text() {
        let secret = WebhookSecret::from_bytes((0u8..32).collect()).unwrap();
        assert_eq!(format!("{secret:?}"), "WebhookSecret(..)");
        assert_eq!(WebhookSecret::parse(&secret.expose()).unwrap(), secret);
    }

    #[test]
    fn no_secret_or_a_bad_id_is_an_error() {
        let s = [WebhookSecret::from_bytes(vec![7; 32]).unwrap()];
        assert_eq!(sign("msg_1", 1, b"", &[]).unwrap_err().field, "secrets");
        assert_eq!(sign("", 1, b"", &s).unwrap_err().field, "id");
        assert_eq!(sign("msg 1", 1, b"", &s).unwrap_err().field, "id");
        assert_eq!(sign("msg\n1", 1, b"", &s).unwrap_err().field, "id");
    }
}
