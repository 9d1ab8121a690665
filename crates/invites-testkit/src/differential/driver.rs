//! Running [`Op`]s on a backend through `InviteService` ([`Driver`]) and on the model
//! ([`ModelDriver`]).

use super::context::Step;
use super::*;

/// The page size the differential run reads event logs with: small, so the cursor is
/// followed across pages.
const EVENT_PAGE: usize = 7;

/// Runs ops on one backend through `InviteService`.
#[derive(Clone, Debug)]
pub struct Driver {
    /// The backend.
    pub backend: Arc<dyn Backend>,
    /// The service, its mailer and its clock.
    pub harness: Harness,
    /// The seeded world.
    pub world: World,
    /// What the run has seen.
    pub ctx: Context,
}

impl Driver {
    /// Seeds the [`World`] into `backend` and wires a [`Harness`] with `seed` to it.
    pub async fn new(backend: Arc<dyn Backend>, seed: u64) -> Self {
        let world = World::seed(&*backend).await;
        let harness = Harness::with_seed(as_store(&backend), seed);
        Driver {
            backend,
            harness,
            world,
            ctx: Context::default(),
        }
    }

    /// Runs one op.
    ///
    /// # Panics
    /// If a directory change the op asks for fails.
    pub async fn apply(&mut self, op: &Op) -> Outcome {
        let step = self.ctx.resolve(op);
        let outcome = self.run(&step).await;
        let sent = self.harness.mailer.sent();
        let snapshot = self.snapshot().await;
        self.ctx.observe(&step, &outcome, &sent, &snapshot);
        outcome
    }

    /// Runs ops in order.
    pub async fn apply_all(&mut self, ops: &[Op]) {
        for op in ops {
            self.apply(op).await;
        }
    }

    /// The id of the user with `email` in the backend, or an unknown id.
    async fn user(&self, email: &Email) -> UserId {
        self.backend
            .find_user(email)
            .await
            .ok()
            .flatten()
            .map_or(UserId(UNKNOWN), |u| u.id)
    }

    /// `access` of every pair, through the service.
    pub async fn access(&self, pairs: &[(UserId, WebsiteId)]) -> Vec<AccessAnswer> {
        let mut answers = Vec::with_capacity(pairs.len());
        for &(u, w) in pairs {
            answers.push(((u, w), reduce(self.harness.service.access(u, w).await)));
        }
        answers
    }

    /// The event log of each organization of the world, read through the service in pages
    /// of 7 (small, so the cursor is followed across pages).
    ///
    /// # Panics
    /// If a read fails.
    pub async fn events(&self) -> Vec<Event> {
        let mut all = Vec::new();
        for org in [self.world.org, self.world.other_org] {
            let mut cursor: Option<String> = None;
            loop {
                let page = self
                    .harness
                    .service
                    .events(org, cursor.as_deref(), EVENT_PAGE)
                    .await
                    .expect("events");
                let n = page.events.len();
                all.extend(page.events);
                cursor = Some(page.next);
                if n < EVENT_PAGE {
                    break;
                }
            }
        }
        all
    }

    /// The backend's snapshot.
    ///
    /// # Panics
    /// If the backend cannot produce it.
    pub async fn snapshot(&self) -> Snapshot {
        self.backend.snapshot().await.expect("snapshot")
    }

    async fn run(&mut self, step: &Step) -> Outcome {
        let svc = &self.harness.service;
        match step {
            Step::Bulk {
                principal,
                request,
                key,
            } => Outcome::Bulk(reduce(match key {
                Some(k) => {
                    svc.bulk_invite_idempotent(principal, k, request.clone())
                        .await
                }
                None => svc.bulk_invite(principal, request.clone()).await,
            })),
            Step::AddOrgMember {
                organization,
                email,
                role,
            } => {
                let user = self
                    .backend
                    .create_user(&User {
                        id: directory_user_id(email),
                        email: email.clone(),
                        email_verified: false,
                        first_name: None,
                        last_name: None,
                    })
                    .await
                    .expect("create user");
                self.backend
                    .add_org_member(*organization, user, *role)
                    .await
                    .expect("add org member");
                Outcome::Done
            }
            Step::DeleteWebsite(w) => {
                self.backend
                    .delete_website(*w, self.harness.clock.now())
                    .await
                    .expect("delete");
                Outcome::Done
            }
            Step::DeliverDue => Outcome::Deliver(reduce(svc.deliver_due().await)),
            Step::Purge => Outcome::Purge(reduce(svc.purge_expired().await)),
            Step::SetMailer(m) => {
                self.harness.mailer.set_mode(*m);
                Outcome::Done
            }
            Step::Advance(d) => {
                self.harness.clock.advance(*d);
                Outcome::Done
            }
            Step::Revoke { principal, id } => {
                Outcome::Revoke(reduce(svc.revoke(principal, *id).await))
            }
            Step::Resend { principal, batch } => {
                Outcome::Resend(reduce(svc.resend(principal, *batch).await))
            }
            Step::Preview { token } => Outcome::Preview(reduce(svc.preview(token).await)),
            Step::List {
                principal,
                filter,
                limit,
            } => {
                let mut pages = Vec::new();
                let mut cursor: Option<String> = None;
                while pages.len() < MAX_PAGES {
                    let page = reduce(
                        svc.list_invitations(principal, filter.clone(), *limit, cursor.as_deref())
                            .await,
                    );
                    cursor = page.as_ref().ok().and_then(|p| p.next_cursor.clone());
                    pages.push(page);
                    if cursor.is_none() {
                        break;
                    }
                }
                Outcome::List(pages)
            }
            Step::Accept { token, signed_in } => {
                let uid = match signed_in {
                    Some(e) => Some(
                        self.backend
                            .find_user(e)
                            .await
                            .ok()
                            .flatten()
                            .map_or(UserId(UNKNOWN), |u| u.id),
                    ),
                    None => None,
                };
                Outcome::Accept(reduce(svc.accept(token, uid).await))
            }
            Step::SetMemberRole {
                principal,
                target,
                email,
                role,
            } => {
                let user = self.user(email).await;
                let svc = &self.harness.service;
                Outcome::Member(reduce(
                    svc.set_member_role(principal, *target, user, *role).await,
                ))
            }
            Step::RemoveMember {
                principal,
                target,
                email,
            } => {
                let user = self.user(email).await;
                let svc = &self.harness.service;
                Outcome::Member(reduce(svc.remove_member(principal, *target, user).await))
            }
            Step::RemoveOrgMember {
                organization,
                email,
            } => {
                let user = self.user(email).await;
                Outcome::Directory(
                    self.backend
                        .remove_org_member(*organization, user, self.harness.clock.now())
                        .await
                        .ok(),
                )
            }
            Step::SetOrgRole {
                organization,
                email,
                role,
            } => {
                let user = self.user(email).await;
                Outcome::Directory(
                    self.backend
                        .set_org_role(*organization, user, *role, self.harness.clock.now())
                        .await
                        .ok(),
                )
            }
            Step::AddWebsiteToGroup { group, website } => Outcome::Directory(
                self.backend
                    .add_website_to_group(*group, *website)
                    .await
                    .ok()
                    .map(|()| true),
            ),
            Step::RemoveWebsiteFromGroup { group, website } => Outcome::Directory(
                self.backend
                    .remove_website_from_group(*group, *website, self.harness.clock.now())
                    .await
                    .ok(),
            ),
            Step::DeleteGroup(g) => Outcome::Directory(
                self.backend
                    .delete_group(*g, self.harness.clock.now())
                    .await
                    .ok(),
            ),
            Step::Erase(email) => Outcome::Erase(reduce(svc.erase_person(email).await)),
            Step::MembersOf {
                principal,
                target,
                limit,
            } => {
                let mut pages = Vec::new();
                let mut cursor: Option<String> = None;
                while pages.len() < MAX_PAGES {
                    let page = reduce(
                        svc.members_of(principal, *target, cursor.as_deref(), *limit)
                            .await,
                    );
                    cursor = page.as_ref().ok().and_then(|p| p.next_cursor.clone());
                    pages.push(page);
                    if cursor.is_none() {
                        break;
                    }
                }
                Outcome::Members(pages)
            }
            Step::WebsitesOf {
                principal,
                email,
                limit,
            } => {
                let user = self.user(email).await;
                let svc = &self.harness.service;
                let mut pages = Vec::new();
                let mut cursor: Option<String> = None;
                while pages.len() < MAX_PAGES {
                    let page = reduce(
                        svc.websites_of(principal, user, cursor.as_deref(), *limit)
                            .await,
                    );
                    cursor = page.as_ref().ok().and_then(|p| p.next_cursor.clone());
                    pages.push(page);
                    if cursor.is_none() {
                        break;
                    }
                }
                Outcome::Websites(pages)
            }
            Step::Nothing => Outcome::Done,
        }
    }
}

/// Runs ops on the reference [`Model`].
#[derive(Clone, Debug)]
pub struct ModelDriver {
    /// The model.
    pub model: Model,
    /// What the run has seen.
    pub ctx: Context,
}

impl ModelDriver {
    /// A model of `world` seeded like a [`Harness`] with `seed`, at the harness's start time.
    pub fn new(world: &World, seed: u64) -> Self {
        let mut model = Model::new(
            seed,
            invites_core::Clock::now(&ManualClock::standard()),
            ModelSettings::harness(),
        );
        model.seed_world(world);
        ModelDriver {
            model,
            ctx: Context::default(),
        }
    }

    /// Runs one op.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        let step = self.ctx.resolve(op);
        let outcome = self.run(&step);
        let sent = self.model.sent().to_vec();
        let snapshot = self.model.snapshot();
        self.ctx.observe(&step, &outcome, &sent, &snapshot);
        outcome
    }

    /// The model's event log of each organization of the world (as [`Driver::events`]).
    pub fn events(&self, world: &World) -> Vec<Event> {
        let mut all = self.model.events(world.org);
        all.extend(self.model.events(world.other_org));
        all
    }

    /// The model's `access` of every pair.
    pub fn access(&self, pairs: &[(UserId, WebsiteId)]) -> Vec<AccessAnswer> {
        pairs
            .iter()
            .map(|&(u, w)| ((u, w), Ok(self.model.access(u, w))))
            .collect()
    }

    fn run(&mut self, step: &Step) -> Outcome {
        let m = &mut self.model;
        match step {
            Step::Bulk {
                principal,
                request,
                key,
            } => Outcome::Bulk(reduce(match key {
                Some(k) => m.bulk_invite_idempotent(principal, k, request),
                None => m.bulk_invite(principal, request),
            })),
            Step::AddOrgMember {
                organization,
                email,
                role,
            } => {
                let user = m.create_user(User {
                    id: directory_user_id(email),
                    email: email.clone(),
                    email_verified: false,
                    first_name: None,
                    last_name: None,
                });
                m.add_org_member(*organization, user, *role);
                Outcome::Done
            }
            Step::DeleteWebsite(w) => {
                m.delete_website(*w);
                Outcome::Done
            }
            Step::DeliverDue => Outcome::Deliver(Ok(m.deliver_due())),
            Step::Purge => Outcome::Purge(Ok(m.purge_expired())),
            Step::SetMailer(mode) => {
                m.set_mailer(*mode);
                Outcome::Done
            }
            Step::Advance(d) => {
                m.advance(*d);
                Outcome::Done
            }
            Step::Revoke { principal, id } => Outcome::Revoke(reduce(m.revoke(principal, *id))),
            Step::Resend { principal, batch } => {
                Outcome::Resend(reduce(m.resend(principal, *batch)))
            }
            Step::Preview { token } => Outcome::Preview(reduce(m.preview(token))),
            Step::List {
                principal,
                filter,
                limit,
            } => {
                let mut pages = Vec::new();
                let mut cursor: Option<String> = None;
                while pages.len() < MAX_PAGES {
                    let page =
                        reduce(m.list_invitations(principal, filter, *limit, cursor.as_deref()));
                    cursor = page.as_ref().ok().and_then(|p| p.next_cursor.clone());
                    pages.push(page);
                    if cursor.is_none() {
                        break;
                    }
                }
                Outcome::List(pages)
            }
            Step::Accept { token, signed_in } => {
                let uid = signed_in
                    .as_ref()
                    .map(|e| m.find_user(e).map_or(UserId(UNKNOWN), |u| u.id));
                Outcome::Accept(reduce(m.accept(token, uid)))
            }
            Step::SetMemberRole {
                principal,
                target,
                email,
                role,
            } => {
                let user = model_user(m, email);
                Outcome::Member(Ok(m.set_member_role(principal, *target, user, *role)))
            }
            Step::RemoveMember {
                principal,
                target,
                email,
            } => {
                let user = model_user(m, email);
                Outcome::Member(Ok(m.remove_member(principal, *target, user)))
            }
            Step::RemoveOrgMember {
                organization,
                email,
            } => {
                let user = model_user(m, email);
                Outcome::Directory(Some(m.remove_org_member(*organization, user)))
            }
            Step::SetOrgRole {
                organization,
                email,
                role,
            } => {
                let user = model_user(m, email);
                Outcome::Directory(Some(m.set_org_role(*organization, user, *role)))
            }
            Step::AddWebsiteToGroup { group, website } => {
                Outcome::Directory(m.add_website_to_group(*group, *website).then_some(true))
            }
            Step::RemoveWebsiteFromGroup { group, website } => {
                Outcome::Directory(Some(m.remove_website_from_group(*group, *website)))
            }
            Step::DeleteGroup(g) => Outcome::Directory(Some(m.delete_group(*g))),
            Step::Erase(email) => Outcome::Erase(reduce(m.erase_person(email))),
            Step::MembersOf {
                principal,
                target,
                limit,
            } => {
                let mut pages = Vec::new();
                let mut cursor: Option<String> = None;
                while pages.len() < MAX_PAGES {
                    let page = reduce(m.members_of(principal, *target, cursor.as_deref(), *limit));
                    cursor = page.as_ref().ok().and_then(|p| p.next_cursor.clone());
                    pages.push(page);
                    if cursor.is_none() {
                        break;
                    }
                }
                Outcome::Members(pages)
            }
            Step::WebsitesOf {
                principal,
                email,
                limit,
            } => {
                let user = model_user(m, email);
                let mut pages = Vec::new();
                let mut cursor: Option<String> = None;
                while pages.len() < MAX_PAGES {
                    let page = reduce(m.websites_of(principal, user, cursor.as_deref(), *limit));
                    cursor = page.as_ref().ok().and_then(|p| p.next_cursor.clone());
                    pages.push(page);
                    if cursor.is_none() {
                        break;
                    }
                }
                Outcome::Websites(pages)
            }
            Step::Nothing => Outcome::Done,
        }
    }
}

/// The id of the user with `email` in the model, or an unknown id.
fn model_user(m: &Model, email: &Email) -> UserId {
    m.find_user(email).map_or(UserId(UNKNOWN), |u| u.id)
}
