//! The facade's `postgres` feature: `invites::postgres::PgStore` serves an `InviteService`
//! end to end (direct add, email invite with its consolidated message, accept). Skips (one
//! line) without `INVITES_PG_URL`.

use invites::postgres::PgOptions;
use invites::prelude::*;
use invites_postgres::testing::{fresh_database, server_url};
use invites_testkit::{Harness, World};

#[tokio::test]
async fn the_facade_serves_an_invite_service_on_postgres() {
    let Some(url) = server_url("facade postgres") else {
        return;
    };
    let db = fresh_database(&url).await;
    let store = db
        .store_with(PgOptions::default().schema("host_app").expect("schema"))
        .await;
    let world = World::seed(&store).await;
    let h = Harness::new(store);
    let r = h
        .service
        .bulk_invite(
            &world.global_key(),
            BulkInviteRequest::websites(
                InviteMethod::Direct,
                "Ann@Example.com",
                [world.websites[0]],
            ),
        )
        .await
        .expect("direct");
    assert_eq!(r.results[0].code, OutcomeCode::Added);
    assert!(r.user_created);
    let r = h
        .service
        .bulk_invite(
            &world.global_key(),
            BulkInviteRequest::websites(
                InviteMethod::Email,
                "bo@example.com",
                world.websites[1..3].iter().copied(),
            ),
        )
        .await
        .expect("email");
    assert_eq!(r.summary.succeeded, 2);
    assert_eq!(h.mailer.sent().len(), 1);
    let accepted = h
        .service
        .accept(&h.last_token(), None)
        .await
        .expect("accept");
    assert_eq!(accepted.results.len(), 2);
    assert!(
        accepted
            .results
            .iter()
            .all(|r| r.result.code == OutcomeCode::Added)
    );
}
