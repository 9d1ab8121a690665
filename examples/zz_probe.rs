//! Scratch probe (deleted before hand-off): WAL frames and time per request.
#![allow(missing_docs)]
use async_trait::async_trait;
use invites::core::{EmailMessage, MailError};
use invites::prelude::*;
use invites::sqlite::SqliteStore;
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug)]
struct NullMailer;
#[async_trait]
impl Mailer for NullMailer {
    async fn send(&self, _: &EmailMessage) -> Result<(), MailError> {
        Ok(())
    }
}
fn org() -> OrganizationId {
    OrganizationId(Uuid::from_u128(0xB0))
}
fn site(i: usize) -> WebsiteId {
    WebsiteId(Uuid::from_u128(0x1_0000 + i as u128))
}
static C: AtomicU64 = AtomicU64::new(0);
fn email() -> String {
    format!("bench-{}-{}@example.test", std::process::id(), C.fetch_add(1, Ordering::Relaxed))
}
fn key() -> Principal {
    Principal::global(org(), ApiKeyId(Uuid::from_u128(0xC1)))
}

fn wal_frames(path: &str) -> u64 {
    let len = std::fs::metadata(format!("{path}-wal")).map(|m| m.len()).unwrap_or(0);
    if len <= 32 { 0 } else { (len - 32) / (4096 + 24) }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let grow: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(500);
    let path = format!("/tmp/zz-probe-{}.db", std::process::id());
    let store = SqliteStore::open(&path).await.unwrap();
    store.create_organization(org(), "Bench").await.unwrap();
    for i in 0..50 {
        store
            .create_website(&Website { id: site(i), organization: org(), name: format!("Site {i}"), url: format!("https://s{i}.t") })
            .await
            .unwrap();
    }
    let svc = InviteService::new(Arc::new(store.clone()), Arc::new(NullMailer), InviteConfig::new("https://b.test/a").unwrap());
    let sites: Vec<WebsiteId> = (0..50).map(site).collect();
    let t = Instant::now();
    for _ in 0..grow {
        svc.bulk_invite(&key(), BulkInviteRequest::websites(InviteMethod::Direct, &email(), sites.clone())).await.unwrap();
        svc.bulk_invite(&key(), BulkInviteRequest::websites(InviteMethod::Email, &email(), sites.clone())).await.unwrap();
    }
    eprintln!("grown {grow} pairs in {:?}", t.elapsed());
    let ck = Connection::open(&path).unwrap();
    let n = 30;
    for mode in ["direct", "email", "concurrent4", "raw"] {
        let mut frames = 0;
        let mut time = Duration::ZERO;
        for _ in 0..n {
            let _: (i64, i64, i64) = ck.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
            let start = Instant::now();
            match mode {
                "direct" | "email" => {
                    let m = if mode == "direct" { InviteMethod::Direct } else { InviteMethod::Email };
                    svc.bulk_invite(&key(), BulkInviteRequest::websites(m, &email(), sites.clone())).await.unwrap();
                }
                "concurrent4" => {
                    let ts: Vec<_> = (0..4)
                        .map(|_| {
                            let (svc, sites) = (svc.clone(), sites.clone());
                            tokio::spawn(async move {
                                svc.bulk_invite(&key(), BulkInviteRequest::websites(InviteMethod::Direct, &email(), sites)).await.unwrap()
                            })
                        })
                        .collect();
                    for t in ts {
                        t.await.unwrap();
                    }
                }
                _ => {
                    let mut conn = Connection::open(&path).unwrap();
                    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
                    let start = Instant::now();
                    let user = *Uuid::new_v4().as_bytes();
                    let tx = conn.transaction().unwrap();
                    tx.prepare_cached("INSERT INTO users (id, email, email_verified) VALUES (?1, ?2, 0)").unwrap().execute((&user[..], email())).unwrap();
                    {
                        let mut stmt = tx.prepare_cached("INSERT INTO website_members (website_id, user_id, role, created_at) VALUES (?1, ?2, 'viewer', 0)").unwrap();
                        for s in &sites {
                            stmt.execute((&s.0.as_bytes()[..], &user[..])).unwrap();
                        }
                    }
                    tx.commit().unwrap();
                    time += start.elapsed();
                    frames += wal_frames(&path);
                    continue;
                }
            }
            time += start.elapsed();
            frames += wal_frames(&path);
        }
        println!("{mode:12} frames/op {:6.1}  time/op {:?}", frames as f64 / n as f64, time / n as u32);
    }
    drop(ck);
    drop(svc);
    drop(store);
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{s}"));
    }
}
