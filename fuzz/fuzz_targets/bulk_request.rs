//! `BulkInviteRequest::from_json` plus `validate` on arbitrary bytes: never panics, errors
//! name a bounded field, the serde path agrees with `from_json`, a parsed request
//! re-serializes to an equal request, and a validated request keeps its invariants (1 to 50
//! distinct targets, a stable email that round-trips through SQLite).
#![no_main]

mod common;

use invites_core::{BulkInviteRequest, MAX_REQUEST_BODY_BYTES, MAX_TARGETS};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;

fuzz_target!(|data: &[u8]| {
    let parsed = BulkInviteRequest::from_json(data);
    let via_serde = serde_json::from_slice::<BulkInviteRequest>(data);
    match &parsed {
        Err(e) => {
            let field = e.field().expect("a parse error names its field");
            assert!(!field.is_empty() && field.len() <= 128, "field {field:?}");
            if data.len() <= MAX_REQUEST_BODY_BYTES {
                assert!(via_serde.is_err(), "serde accepted what from_json refused");
            }
        }
        Ok(req) => {
            assert!(data.len() <= MAX_REQUEST_BODY_BYTES);
            assert_eq!(via_serde.as_ref().ok(), Some(req), "serde disagrees");
            let again = serde_json::to_vec(req).expect("a request serializes");
            assert_eq!(
                BulkInviteRequest::from_json(&again).as_ref().ok(),
                Some(req),
                "re-parsing the serialized request differs"
            );
            match req.validate() {
                Ok(valid) => {
                    assert!((1..=MAX_TARGETS).contains(&valid.targets.len()));
                    let distinct: HashSet<_> = valid.targets.iter().map(|t| t.uuid()).collect();
                    assert_eq!(distinct.len(), valid.targets.len());
                    common::check_email(&valid.email);
                }
                Err(e) => {
                    assert!(e.field().is_some_and(|f| f.len() <= 128));
                }
            }
        }
    }
});
