//! The test server: the router over a seeded in-memory world, with a resolver that knows a
//! few keys, and a helper that sends one request through `tower::ServiceExt::oneshot`.

#![allow(dead_code, unreachable_pub)]

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use invites_axum::{AuthError, InvitesApi, PrincipalResolver, router};
use invites_core::{Principal, WebsiteId};
use invites_memory::MemoryStore;
use invites_testkit::{FaultyStore, Harness, World};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

/// `global`, `scoped` (websites 0 and 1), `limited` (rate-limited), `broken` (the key store
/// fails), `panics` (the resolver panics); anything else is invalid.
#[derive(Debug)]
pub struct TestKeys {
    pub global: Principal,
    pub scoped: Principal,
}

#[async_trait]
impl PrincipalResolver for TestKeys {
    async fn resolve(&self, parts: &Parts) -> Result<Principal, AuthError> {
        let key = parts.headers.get("x-api-key").ok_or(AuthError::Missing)?;
        match key.as_bytes() {
            b"global" => Ok(self.global.clone()),
            b"scoped" => Ok(self.scoped.clone()),
            b"limited" => Err(AuthError::RateLimited {
                retry_after_secs: 7,
            }),
            b"broken" => Err(AuthError::Unavailable {
                source: "key store down".into(),
            }),
            b"panics" => panic!("resolver bug"),
            _ => Err(AuthError::Invalid),
        }
    }
}

pub struct Server {
    pub app: Router,
    pub world: World,
    pub harness: Harness,
    pub store: MemoryStore,
    pub faults: FaultyStore,
}

impl Server {
    pub fn site(&self, i: usize) -> WebsiteId {
        self.world.websites[i]
    }

    /// `POST /invites/bulk` with `body` (JSON) as the key named `key`.
    pub async fn post_bulk(&self, key: &str, body: impl Into<String>) -> Reply {
        call(Method::POST, "/invites/bulk")
            .key(key)
            .json(body)
            .send(&self.app)
            .await
    }

    /// Invites `email` by email to `sites` with the global key.
    pub async fn invite_by_email(&self, email: &str, sites: &[WebsiteId]) -> Reply {
        self.post_bulk("global", bulk("email", email, sites)).await
    }
}

/// A fresh world, a service with a manual clock and seed `seed`, the router nested at
/// `/api/v1` with [`TestKeys`].
pub async fn server_with(seed: u64, body_limit: Option<usize>) -> Server {
    let store = MemoryStore::new();
    let world = World::seed(&store).await;
    let faults = FaultyStore::new(Arc::new(store.clone()));
    let harness = Harness::with_seed(Arc::new(faults.clone()), seed);
    let keys = TestKeys {
        global: world.global_key(),
        scoped: world.scoped_key(&world.websites[..2]),
    };
    let mut api = InvitesApi::new(harness.service.clone()).with_resolver(keys);
    if let Some(limit) = body_limit {
        api = api.with_body_limit(limit);
    }
    let app = Router::new().nest("/api/v1", router(api));
    Server {
        app,
        world,
        harness,
        store,
        faults,
    }
}

pub async fn server() -> Server {
    server_with(1, None).await
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: String,
}

impl Reply {
    /// The `error.code` of an error body, after checking the body's shape.
    pub fn code(&self) -> &str {
        assert_eq!(self.body["success"], false, "{}", self.raw);
        assert_eq!(
            self.headers["content-type"], "application/json",
            "{}",
            self.raw
        );
        self.body["error"]["code"].as_str().expect("a code")
    }

    pub fn field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }
}

/// A request builder: method, path under `/api/v1`, optional key, optional JSON body.
pub struct Call {
    request: axum::http::request::Builder,
    body: Body,
}

pub fn call(method: Method, path: &str) -> Call {
    Call {
        request: Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}")),
        body: Body::empty(),
    }
}

impl Call {
    pub fn key(mut self, key: &str) -> Self {
        self.request = self.request.header("x-api-key", key);
        self
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.request = self.request.header(name, value.as_ref());
        self
    }

    /// A JSON body with its content type.
    pub fn json(mut self, body: impl Into<String>) -> Self {
        self.request = self.request.header("content-type", "application/json");
        self.body = Body::from(body.into());
        self
    }

    /// A body with no content type.
    pub fn raw(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    pub async fn send(self, app: &Router) -> Reply {
        let request = self.request.body(self.body).expect("a valid request");
        let response = app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let raw = String::from_utf8(bytes.to_vec()).expect("UTF-8");
        let body = serde_json::from_str(&raw)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {status} {raw:?}"));
        Reply {
            status,
            headers,
            body,
            raw,
        }
    }
}

/// The JSON of a bulk request to `ids` (websites).
pub fn bulk(method: &str, email: &str, ids: &[WebsiteId]) -> String {
    serde_json::json!({"invite_method": method, "email": email, "website_ids": ids}).to_string()
}
