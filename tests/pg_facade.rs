//! The facade's `postgres` feature: `invites::postgres::PgStore` serves an `InviteService`.
fn main() {}
