//! Bounds on everything a caller controls (the table is in the crate docs, `# Limits`).
use crate::error::{ErrorCode, InviteError};
use crate::invitee::is_hidden_or_control;

/// Largest request body [`BulkInviteRequest::from_json`](crate::BulkInviteRequest::from_json)
/// reads, in bytes. A maximal honest request (50 UUIDs, a 254-byte address, two 100-character
/// names, pretty-printed) is under 4 KiB.
pub const MAX_REQUEST_BODY_BYTES: usize = 16 * 1024;

/// Longest id array parsing looks into. A request may name at most
/// [`MAX_TARGETS`](crate::MAX_TARGETS) targets, but the documented error order puts
/// `global_key_required` and `mutually_exclusive_targets` before `invalid_target_count`, so an
/// array a little too long is parsed and judged in that order; one past this bound is
/// `invalid_target_count` at once, whatever else the body holds, without parsing any element.
pub const MAX_ID_ARRAY_LEN: usize = 10 * crate::request::MAX_TARGETS;

/// Longest field name an `unknown_field` error repeats, in bytes; longer names are cut (at a
/// character boundary) and marked with `…`.
pub const MAX_ECHOED_FIELD_BYTES: usize = 64;

/// Longest idempotency key, in characters (all printable ASCII).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Checks an idempotency key: 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] printable ASCII characters
/// (`!` to `~`, no spaces).
///
/// # Errors
/// [`InviteError::Validation`] with `invalid_idempotency_key`, field `idempotency_key`.
pub fn check_idempotency_key(key: &str) -> Result<(), InviteError> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.bytes().all(|b| (0x21..=0x7e).contains(&b))
    {
        return Err(InviteError::validation(
            ErrorCode::InvalidIdempotencyKey,
            "idempotency_key",
            "must be 1 to 255 printable ASCII characters",
        ));
    }
    Ok(())
}

/// A caller-chosen name made safe to repeat in an error: control, invisible and line-breaking
/// characters become `\u{fffd}`, the text is cut to [`MAX_ECHOED_FIELD_BYTES`], and an empty
/// name is shown as `""`.
pub(crate) fn echo_field(name: &str) -> String {
    // An empty key (`{"": 1}`) would make an error that names no field.
    if name.is_empty() {
        return "\"\"".to_owned();
    }
    let mut out = String::with_capacity(name.len().min(MAX_ECHOED_FIELD_BYTES + 3));
    for c in name.chars() {
        let c = if is_hidden_or_control(c) {
            '\u{fffd}'
        } else {
            c
        };
        if out.len() + c.len_utf8() > MAX_ECHOED_FIELD_BYTES {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_names_are_bounded_and_clean() {
        assert_eq!(echo_field("emial"), "emial");
        // Found by the `bulk_request` fuzz target: `{"": ...}` named an empty field.
        assert_eq!(echo_field(""), "\"\"");
        let long = "é".repeat(1000);
        let e = echo_field(&long);
        assert!(e.len() <= MAX_ECHOED_FIELD_BYTES + '…'.len_utf8());
        assert!(e.ends_with('…'));
        assert_eq!(echo_field("a\r\nb\u{202e}"), "a\u{fffd}\u{fffd}b\u{fffd}");
    }

    #[test]
    fn idempotency_keys_are_bounded_printable_ascii() {
        assert!(check_idempotency_key("order-42").is_ok());
        assert!(check_idempotency_key(&"k".repeat(MAX_IDEMPOTENCY_KEY_LEN)).is_ok());
        for bad in [
            String::new(),
            "k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1),
            "with space".into(),
            "naïve".into(),
            "tab\there".into(),
        ] {
            let err = check_idempotency_key(&bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidIdempotencyKey, "{bad:?}");
            assert_eq!(err.field(), Some("idempotency_key"));
        }
    }
}
