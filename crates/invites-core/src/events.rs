//! The event log (contract §12): one event per committed change, written by the store in
//! the change's own transaction, read back by a per-organization cursor.
//!
//! # What an event holds
//!
//! Ids only: the organization, the ids it concerns (target, user, invitation, batch,
//! message, group), the API key that caused it when there was one, the role it set, and the
//! time. **Never an address or a name**, so an erasure leaves the log clean: an erasure also
//! clears the erased user's id from every earlier event
//! ([`AccessStore::erase_person`](crate::AccessStore::erase_person)).
//!
//! # Positions and the cursor
//!
//! Each organization numbers its events 1, 2, 3, … with no gaps, in commit order: a store
//! takes the next positions from a counter on the organization's row, under that row's
//! lock, as the last step before its commit. So a transaction that took position 10 has
//! committed before one can take 11, and a reader that sees 11 sees 10 too. A reader that
//! resumes after the last position it processed ([`EventCursor`]) never misses an event and
//! never sees one twice. Positions survive the purge of old events (the counter lives on the
//! organization), so a gap between a cursor and the first event read means only that the
//! events in between were purged.
//!
//! # Which calls write events
//!
//! | call | events, in this order |
//! |---|---|
//! | [`add_members`](crate::BulkStore::add_members) | `user_created` (when the call created the user), then per added target: `member_added`, `invitation_superseded` (when it superseded one) |
//! | [`create_invitations`](crate::BulkStore::create_invitations) | per invited target: `invitation_created` |
//! | [`accept_batch`](crate::LifecycleStore::accept_batch) | `user_created` (when created), then per accepted invitation: `invitation_accepted`, and `member_added` when it created the membership |
//! | [`revoke_invitation`](crate::LifecycleStore::revoke_invitation) | `invitation_revoked` when it revoked |
//! | [`rotate_batch`](crate::LifecycleStore::rotate_batch) | `batch_resent` when it rotated |
//! | [`record_delivery`](crate::OutboxStore::record_delivery) | `email_sent` / `email_failed` when a `Sent` / `Failed` record applied |
//! | [`change_member`](crate::AccessStore::change_member) | `member_role_changed`, or `member_removed` then `invitation_revoked` per invitation the removal revoked |
//! | [`erase_person`](crate::AccessStore::erase_person) | `person_erased` (no user id) in each organization it deleted something of |
//! | [`Directory`](crate::Directory) changes | `org_member_removed`, `org_member_role_changed`, `website_removed_from_group`, `group_deleted`, `website_deleted`, each only when it changed something |
//!
//! A call that changes nothing writes nothing. Writing no event: idempotency records,
//! claims and retries of the outbox, purges (retention is housekeeping, not a change a host
//! mirrors), and the Directory's seeding calls (`create_*`, `add_website_to_group`,
//! `add_org_member`, `create_user`), which the host makes itself and knows of.

use crate::error::{ErrorCode, InviteError, StoreError};
use crate::ids::{
    ApiKeyId, BatchId, GroupId, InvitationId, MessageId, OrganizationId, TargetId, UserId,
    WebsiteId,
};
use crate::invitee::{OrgRole, Role};
use crate::time::Timestamp;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// What happened. The wire name ([`EventKind::as_str`]) is the event's `type`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A website or group membership was created (direct add, or an accepted invitation).
    MemberAdded,
    /// The library created a user (direct add, or accepting with a new address).
    UserCreated,
    /// An invitation was created (its batch's email is queued with it).
    InvitationCreated,
    /// An invitation was accepted.
    InvitationAccepted,
    /// An invitation was revoked (by a call, or by removing the member).
    InvitationRevoked,
    /// A pending invitation was superseded by a direct add of the same person.
    InvitationSuperseded,
    /// A batch's link was replaced and its email queued again.
    BatchResent,
    /// A batch's email was delivered to the mail transport.
    EmailSent,
    /// A batch's email was given up on.
    EmailFailed,
    /// A website or group membership's role was changed.
    MemberRoleChanged,
    /// A website or group membership was removed.
    MemberRemoved,
    /// An organization member was removed.
    OrgMemberRemoved,
    /// An organization member's role was changed.
    OrgMemberRoleChanged,
    /// A website was taken out of a group.
    WebsiteRemovedFromGroup,
    /// A group was deleted, with its memberships and invitations.
    GroupDeleted,
    /// A website was deleted, with its memberships and invitations.
    WebsiteDeleted,
    /// A person was erased; the event names no one.
    PersonErased,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 17] = [
        EventKind::MemberAdded,
        EventKind::UserCreated,
        EventKind::InvitationCreated,
        EventKind::InvitationAccepted,
        EventKind::InvitationRevoked,
        EventKind::InvitationSuperseded,
        EventKind::BatchResent,
        EventKind::EmailSent,
        EventKind::EmailFailed,
        EventKind::MemberRoleChanged,
        EventKind::MemberRemoved,
        EventKind::OrgMemberRemoved,
        EventKind::OrgMemberRoleChanged,
        EventKind::WebsiteRemovedFromGroup,
        EventKind::GroupDeleted,
        EventKind::WebsiteDeleted,
        EventKind::PersonErased,
    ];

    /// The stable wire and storage name (`"member_added"`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::MemberAdded => "member_added",
            EventKind::UserCreated => "user_created",
            EventKind::InvitationCreated => "invitation_created",
            EventKind::InvitationAccepted => "invitation_accepted",
            EventKind::InvitationRevoked => "invitation_revoked",
            EventKind::InvitationSuperseded => "invitation_superseded",
            EventKind::BatchResent => "batch_resent",
            EventKind::EmailSent => "email_sent",
            EventKind::EmailFailed => "email_failed",
            EventKind::MemberRoleChanged => "member_role_changed",
            EventKind::MemberRemoved => "member_removed",
            EventKind::OrgMemberRemoved => "org_member_removed",
            EventKind::OrgMemberRoleChanged => "org_member_role_changed",
            EventKind::WebsiteRemovedFromGroup => "website_removed_from_group",
            EventKind::GroupDeleted => "group_deleted",
            EventKind::WebsiteDeleted => "website_deleted",
            EventKind::PersonErased => "person_erased",
        }
    }

    /// Parses [`EventKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event as a store appends it: the kind and the ids it concerns. The organization, the
/// actor and the time are the call's ([`EventContext`]); the position is the store's.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewEvent {
    /// What happened.
    pub kind: EventKind,
    /// The website or group concerned.
    pub target: Option<TargetId>,
    /// The user concerned.
    pub user: Option<UserId>,
    /// The invitation concerned.
    pub invitation: Option<InvitationId>,
    /// The batch concerned.
    pub batch: Option<BatchId>,
    /// The outbox message concerned.
    pub message: Option<MessageId>,
    /// The group concerned, beside a website target (`website_removed_from_group`).
    pub group: Option<GroupId>,
    /// The role set, by its wire name (a [`Role`] or an [`OrgRole`]).
    pub role: Option<&'static str>,
}

impl NewEvent {
    fn of(kind: EventKind) -> Self {
        NewEvent {
            kind,
            target: None,
            user: None,
            invitation: None,
            batch: None,
            message: None,
            group: None,
            role: None,
        }
    }

    /// `member_added`.
    pub fn member_added(target: TargetId, user: UserId, role: Role) -> Self {
        NewEvent {
            target: Some(target),
            user: Some(user),
            role: Some(role.as_str()),
            ..NewEvent::of(EventKind::MemberAdded)
        }
    }

    /// `user_created`.
    pub fn user_created(user: UserId) -> Self {
        NewEvent {
            user: Some(user),
            ..NewEvent::of(EventKind::UserCreated)
        }
    }

    /// `invitation_created`.
    pub fn invitation_created(
        target: TargetId,
        invitation: InvitationId,
        batch: BatchId,
        role: Role,
    ) -> Self {
        NewEvent {
            target: Some(target),
            invitation: Some(invitation),
            batch: Some(batch),
            role: Some(role.as_str()),
            ..NewEvent::of(EventKind::InvitationCreated)
        }
    }

    /// `invitation_accepted`.
    pub fn invitation_accepted(
        target: TargetId,
        invitation: InvitationId,
        batch: BatchId,
        user: UserId,
    ) -> Self {
        NewEvent {
            target: Some(target),
            invitation: Some(invitation),
            batch: Some(batch),
            user: Some(user),
            ..NewEvent::of(EventKind::InvitationAccepted)
        }
    }

    /// `invitation_revoked`.
    pub fn invitation_revoked(target: TargetId, invitation: InvitationId, batch: BatchId) -> Self {
        NewEvent {
            target: Some(target),
            invitation: Some(invitation),
            batch: Some(batch),
            ..NewEvent::of(EventKind::InvitationRevoked)
        }
    }

    /// `invitation_superseded`.
    pub fn invitation_superseded(
        target: TargetId,
        invitation: InvitationId,
        batch: BatchId,
    ) -> Self {
        NewEvent {
            target: Some(target),
            invitation: Some(invitation),
            batch: Some(batch),
            ..NewEvent::of(EventKind::InvitationSuperseded)
        }
    }

    /// `batch_resent`, with the new message.
    pub fn batch_resent(batch: BatchId, message: MessageId) -> Self {
        NewEvent {
            batch: Some(batch),
            message: Some(message),
            ..NewEvent::of(EventKind::BatchResent)
        }
    }

    /// `email_sent`.
    pub fn email_sent(batch: BatchId, message: MessageId) -> Self {
        NewEvent {
            batch: Some(batch),
            message: Some(message),
            ..NewEvent::of(EventKind::EmailSent)
        }
    }

    /// `email_failed`.
    pub fn email_failed(batch: BatchId, message: MessageId) -> Self {
        NewEvent {
            batch: Some(batch),
            message: Some(message),
            ..NewEvent::of(EventKind::EmailFailed)
        }
    }

    /// `member_role_changed`, with the new role.
    pub fn member_role_changed(target: TargetId, user: UserId, role: Role) -> Self {
        NewEvent {
            target: Some(target),
            user: Some(user),
            role: Some(role.as_str()),
            ..NewEvent::of(EventKind::MemberRoleChanged)
        }
    }

    /// `member_removed`.
    pub fn member_removed(target: TargetId, user: UserId) -> Self {
        NewEvent {
            target: Some(target),
            user: Some(user),
            ..NewEvent::of(EventKind::MemberRemoved)
        }
    }

    /// `org_member_removed`.
    pub fn org_member_removed(user: UserId) -> Self {
        NewEvent {
            user: Some(user),
            ..NewEvent::of(EventKind::OrgMemberRemoved)
        }
    }

    /// `org_member_role_changed`, with the new role.
    pub fn org_member_role_changed(user: UserId, role: OrgRole) -> Self {
        NewEvent {
            user: Some(user),
            role: Some(role.as_str()),
            ..NewEvent::of(EventKind::OrgMemberRoleChanged)
        }
    }

    /// `website_removed_from_group`.
    pub fn website_removed_from_group(group: GroupId, website: WebsiteId) -> Self {
        NewEvent {
            target: Some(TargetId::Website(website)),
            group: Some(group),
            ..NewEvent::of(EventKind::WebsiteRemovedFromGroup)
        }
    }

    /// `group_deleted`.
    pub fn group_deleted(group: GroupId) -> Self {
        NewEvent {
            target: Some(TargetId::Group(group)),
            ..NewEvent::of(EventKind::GroupDeleted)
        }
    }

    /// `website_deleted`.
    pub fn website_deleted(website: WebsiteId) -> Self {
        NewEvent {
            target: Some(TargetId::Website(website)),
            ..NewEvent::of(EventKind::WebsiteDeleted)
        }
    }

    /// `person_erased`: names no one.
    pub fn person_erased() -> Self {
        NewEvent::of(EventKind::PersonErased)
    }

    /// The stored event at `position`, for `ctx`.
    pub fn at_position(&self, ctx: &EventContext, position: u64) -> Event {
        Event {
            position,
            organization: ctx.organization,
            kind: self.kind,
            at: ctx.at,
            actor: ctx.actor,
            target: self.target,
            user: self.user,
            invitation: self.invitation,
            batch: self.batch,
            message: self.message,
            group: self.group,
            role: self.role.map(str::to_owned),
        }
    }
}

/// What the events of one store call share.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EventContext {
    /// The organization whose log they go to.
    pub organization: OrganizationId,
    /// The API key that caused them, when there was one.
    pub actor: Option<ApiKeyId>,
    /// When (the call's `now`).
    pub at: Timestamp,
}

/// A stored event.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Event {
    /// Its position in the organization's log (1, 2, 3, … in commit order).
    pub position: u64,
    /// The organization.
    pub organization: OrganizationId,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When.
    pub at: Timestamp,
    /// The API key that caused it, when there was one.
    pub actor: Option<ApiKeyId>,
    /// The website or group concerned.
    pub target: Option<TargetId>,
    /// The user concerned (cleared when the user is erased).
    pub user: Option<UserId>,
    /// The invitation concerned.
    pub invitation: Option<InvitationId>,
    /// The batch concerned.
    pub batch: Option<BatchId>,
    /// The outbox message concerned.
    pub message: Option<MessageId>,
    /// The group concerned, beside a website target.
    pub group: Option<GroupId>,
    /// The role set, by its wire name.
    pub role: Option<String>,
}

impl Event {
    /// The event's unique id, stable forever: `evt_<organization>_<position>` (the
    /// organization without dashes). Webhooks send it as `webhook-id`.
    pub fn id(&self) -> String {
        format!("evt_{}_{}", self.organization.0.as_simple(), self.position)
    }

    /// The cursor that resumes after this event.
    pub fn cursor(&self) -> EventCursor {
        EventCursor(self.position)
    }
}

/// Where a reader of an organization's log is: after this position. Opaque on the wire
/// (`evc_` and 16 hex digits); [`EventCursor::START`] reads from the beginning.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct EventCursor(pub u64);

impl EventCursor {
    /// Before every event.
    pub const START: EventCursor = EventCursor(0);

    /// The position this cursor is after.
    pub fn position(&self) -> u64 {
        self.0
    }

    /// Parses the wire form; the error names the field `after`.
    ///
    /// # Errors
    /// `invalid_query` when `s` is not a cursor this API returned.
    pub fn parse(s: &str) -> Result<Self, InviteError> {
        let bad = || {
            InviteError::validation(
                ErrorCode::InvalidQuery,
                "after",
                "is not an event cursor this API returned",
            )
        };
        let hex = s.strip_prefix("evc_").ok_or_else(bad)?;
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        u64::from_str_radix(hex, 16)
            .map(EventCursor)
            .map_err(|_| bad())
    }
}

impl fmt::Display for EventCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "evc_{:016x}", self.0)
    }
}

/// A page of events, with the cursor to read on from.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct EventPage {
    /// The events, by position.
    pub events: Vec<Event>,
    /// After the last event of the page, or the cursor given when the page is empty: a
    /// reader stores it once it has processed the page and passes it next time.
    pub next: String,
}

/// Reading and purging the event log; the writes happen inside the other ports' calls
/// (see the [module docs](self)).
///
/// # Contract
///
/// - A call's events are appended in its transaction, after its other writes, at the next
///   positions of the organization's counter taken under the organization row's lock (or
///   the store's single writer), so positions are gap-free and in commit order per
///   organization, and a call that fails or rolls back leaves none.
/// - A target unit that fails ([`BulkStore`](crate::BulkStore)) leaves none of its events.
#[async_trait]
pub trait EventStore: Send + Sync + fmt::Debug + 'static {
    /// The committed events of `organization` after position `after`, by position, at most
    /// `limit` (`0`: none). Empty for an unknown organization.
    ///
    /// # Errors
    /// Storage failure.
    async fn read_events(
        &self,
        organization: OrganizationId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;

    /// Delete events with `at < before`, oldest first, in one short transaction, stopping
    /// once at least `limit` (`0`: none) were deleted or none is left; returns how many. A
    /// store that keeps the events of one call together deletes them together, so its last
    /// group can take it past `limit`; fewer than `limit` means none older was left. The
    /// organizations' counters are kept, so positions are never reused.
    ///
    /// # Errors
    /// Storage failure; nothing deleted.
    async fn purge_events(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError>;
}

macro_rules! forward_events {
    ($ty:ty) => {
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: EventStore + ?Sized> EventStore for $ty {
            async fn read_events(
                &self,
                organization: OrganizationId,
                after: u64,
                limit: usize,
            ) -> Result<Vec<Event>, StoreError> {
                (**self).read_events(organization, after, limit).await
            }
            async fn purge_events(
                &self,
                before: Timestamp,
                limit: usize,
            ) -> Result<u64, StoreError> {
                (**self).purge_events(before, limit).await
            }
        }
    };
}

forward_events!(Arc<T>);
forward_events!(Box<T>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_cursors_parse_only_their_own_form() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::parse("member-added"), None);
        let c = EventCursor(0x1234);
        assert_eq!(c.to_string(), "evc_0000000000001234");
        assert_eq!(EventCursor::parse(&c.to_string()).unwrap(), c);
        for bad in [
            "",
            "evc_",
            "evc_123",
            "evc_000000000000123g",
            "x_0000000000001234",
        ] {
            let e = EventCursor::parse(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidQuery, "{bad}");
            assert!(e.to_string().starts_with("after "), "{e}");
        }
    }
}
