//! `Email::parse` on arbitrary input: never panics, and every accepted address is a fixed
//! point of parsing and round-trips through the SQLite backend.
#![no_main]

mod common;

use invites_core::Email;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    if let Ok(e) = Email::parse(&raw) {
        common::check_email(&e);
    }
});
