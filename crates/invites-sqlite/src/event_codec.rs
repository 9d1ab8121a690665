//! The binary form of the events of one store call: the `data` column of `event_groups`
//! (migration 5). The organization, the positions, the time and the actor are columns of the
//! group; `data` holds what differs from event to event.
//!
//! # Version 1
//!
//! ```text
//! u8      version (1)
//! varint  n, the number of distinct ids; then n × 16 bytes, the ids in order of first use
//! varint  the number of events; then per event:
//!   u8      kind (a code of `KINDS`, from 1)
//!   u8      fields present: 0x01 target, 0x02 the target is a group, 0x04 user,
//!           0x08 invitation, 0x10 batch, 0x20 message, 0x40 group, 0x80 role
//!   varint  per present id field, in that order: its index among the ids
//!   role    when present: u8 code (1 admin, 2 viewer, 3 owner), or 0 then u8 length and
//!           that many bytes of UTF-8
//! ```
//!
//! Varints are unsigned LEB128. A bulk call names one user or one batch in every event and a
//! new target in each: the id table stores each id once, so a 50-target `add_members` is about
//! 1 KiB. Nothing may follow the last event. Erasing a user decodes a group, clears the user
//! and encodes it again: the id table is rebuilt from the events, so the id is gone from the
//! bytes too.

use invites_core::{
    BatchId, EventKind, GroupId, InvitationId, MessageId, NewEvent, TargetId, TargetKind, UserId,
};
use uuid::Uuid;

/// The version this code writes (and the only one it reads).
pub(crate) const VERSION: u8 = 1;

/// The kind codes: `KINDS[code - 1]`. Append only; never reorder.
const KINDS: [EventKind; 17] = [
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

/// The code of `kind`: exhaustive, so a new kind does not compile until it has one.
fn kind_code(kind: EventKind) -> u8 {
    match kind {
        EventKind::MemberAdded => 1,
        EventKind::UserCreated => 2,
        EventKind::InvitationCreated => 3,
        EventKind::InvitationAccepted => 4,
        EventKind::InvitationRevoked => 5,
        EventKind::InvitationSuperseded => 6,
        EventKind::BatchResent => 7,
        EventKind::EmailSent => 8,
        EventKind::EmailFailed => 9,
        EventKind::MemberRoleChanged => 10,
        EventKind::MemberRemoved => 11,
        EventKind::OrgMemberRemoved => 12,
        EventKind::OrgMemberRoleChanged => 13,
        EventKind::WebsiteRemovedFromGroup => 14,
        EventKind::GroupDeleted => 15,
        EventKind::WebsiteDeleted => 16,
        EventKind::PersonErased => 17,
    }
}

/// The role codes: `ROLES[code - 1]` (the wire names of `Role` and `OrgRole`). Append only.
const ROLES: [&str; 3] = ["admin", "viewer", "owner"];

const TARGET: u8 = 0x01;
const TARGET_IS_GROUP: u8 = 0x02;
const USER: u8 = 0x04;
const INVITATION: u8 = 0x08;
const BATCH: u8 = 0x10;
const MESSAGE: u8 = 0x20;
const GROUP: u8 = 0x40;
const ROLE: u8 = 0x80;

/// One event of a group, without what the group's columns hold.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Item<'a> {
    pub kind: EventKind,
    pub target: Option<TargetId>,
    pub user: Option<UserId>,
    pub invitation: Option<InvitationId>,
    pub batch: Option<BatchId>,
    pub message: Option<MessageId>,
    pub group: Option<GroupId>,
    pub role: Option<std::borrow::Cow<'a, str>>,
}

impl<'a> From<&'a NewEvent> for Item<'a> {
    fn from(e: &'a NewEvent) -> Self {
        Item {
            kind: e.kind,
            target: e.target,
            user: e.user,
            invitation: e.invitation,
            batch: e.batch,
            message: e.message,
            group: e.group,
            role: e.role.map(std::borrow::Cow::Borrowed),
        }
    }
}

/// Why `data` could not be decoded (the message of the unreadable-row report).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Malformed(pub &'static str);

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The ids of a group being encoded, each once.
#[derive(Default)]
struct Ids {
    ids: Vec<Uuid>,
}

impl Ids {
    /// The index of `id`, added if new. The events of a call repeat the id of the one before
    /// (the user, the batch), so the search starts from the end.
    fn index(&mut self, id: Uuid) -> u64 {
        match self.ids.iter().rposition(|&known| known == id) {
            Some(i) => i as u64,
            None => {
                self.ids.push(id);
                (self.ids.len() - 1) as u64
            }
        }
    }
}

/// Encodes `items` (version 1).
pub(crate) fn encode<'a>(items: impl ExactSizeIterator<Item = Item<'a>>) -> Vec<u8> {
    let mut ids = Ids::default();
    let mut body = Vec::with_capacity(items.len() * 6 + 4);
    put_varint(&mut body, items.len() as u64);
    for item in items {
        let mut flags = 0u8;
        let mut indexes = [0u64; 6];
        let mut n = 0;
        let fields = [
            (TARGET, item.target.map(|t| t.uuid())),
            (USER, item.user.map(|u| u.0)),
            (INVITATION, item.invitation.map(|i| i.0)),
            (BATCH, item.batch.map(|b| b.0)),
            (MESSAGE, item.message.map(|m| m.0)),
            (GROUP, item.group.map(|g| g.0)),
        ];
        for (bit, id) in fields {
            if let Some(id) = id {
                flags |= bit;
                indexes[n] = ids.index(id);
                n += 1;
            }
        }
        if matches!(item.target, Some(TargetId::Group(_))) {
            flags |= TARGET_IS_GROUP;
        }
        if item.role.is_some() {
            flags |= ROLE;
        }
        body.push(kind_code(item.kind));
        body.push(flags);
        for &index in &indexes[..n] {
            put_varint(&mut body, index);
        }
        if let Some(role) = &item.role {
            match ROLES.iter().position(|r| *r == role) {
                Some(code) => body.push(code as u8 + 1),
                None => {
                    // A role this table does not know yet: spelled out (at most 255 bytes;
                    // the core's roles are a few).
                    let bytes = &role.as_bytes()[..role.len().min(255)];
                    body.push(0);
                    body.push(bytes.len() as u8);
                    body.extend_from_slice(bytes);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(1 + 3 + ids.ids.len() * 16 + body.len());
    out.push(VERSION);
    put_varint(&mut out, ids.ids.len() as u64);
    for id in &ids.ids {
        out.extend_from_slice(id.as_bytes());
    }
    out.extend_from_slice(&body);
    out
}

/// Reads `data` front to back.
struct Reader<'a> {
    data: &'a [u8],
}

const TRUNCATED: Malformed = Malformed("truncated event data");

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, Malformed> {
        let (&b, rest) = self.data.split_first().ok_or(TRUNCATED)?;
        self.data = rest;
        Ok(b)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.data.len() < n {
            return Err(TRUNCATED);
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(Malformed("varint too long"))
    }

    /// A count of things of at least `min_size` bytes each, checked against what is left.
    fn count(&mut self, min_size: usize) -> Result<usize, Malformed> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_size) <= self.data.len() => Ok(n),
            _ => Err(TRUNCATED),
        }
    }
}

/// Decodes `data`: its events in order.
///
/// # Errors
/// [`Malformed`] for another version, truncated or trailing data, an unknown kind, an id
/// index out of range or a target kind without a target.
pub(crate) fn decode(data: &[u8]) -> Result<Vec<Item<'static>>, Malformed> {
    let mut r = Reader { data };
    if r.byte()? != VERSION {
        return Err(Malformed("an event data version this version cannot read"));
    }
    let n_ids = r.count(16)?;
    let ids: Vec<Uuid> = (0..n_ids)
        .map(|_| {
            let bytes = r.bytes(16)?;
            Uuid::from_slice(bytes).map_err(|_| TRUNCATED)
        })
        .collect::<Result<_, Malformed>>()?;
    let n_events = r.count(2)?;
    let mut items = Vec::with_capacity(n_events);
    for _ in 0..n_events {
        let code = r.byte()?;
        let kind = *usize::from(code)
            .checked_sub(1)
            .and_then(|i| KINDS.get(i))
            .ok_or(Malformed("an event kind this version cannot read"))?;
        let flags = r.byte()?;
        let mut id = |bit: u8| -> Result<Option<Uuid>, Malformed> {
            if flags & bit == 0 {
                return Ok(None);
            }
            let index = r.varint()?;
            usize::try_from(index)
                .ok()
                .and_then(|i| ids.get(i))
                .copied()
                .map(Some)
                .ok_or(Malformed("an id index out of range"))
        };
        let target = id(TARGET)?;
        let user = id(USER)?.map(UserId);
        let invitation = id(INVITATION)?.map(InvitationId);
        let batch = id(BATCH)?.map(BatchId);
        let message = id(MESSAGE)?.map(MessageId);
        let group = id(GROUP)?.map(GroupId);
        let target = match (target, flags & TARGET_IS_GROUP != 0) {
            (Some(t), false) => Some(TargetKind::Website.with_id(t)),
            (Some(t), true) => Some(TargetKind::Group.with_id(t)),
            (None, false) => None,
            (None, true) => return Err(Malformed("a target kind without a target")),
        };
        let role = if flags & ROLE == 0 {
            None
        } else {
            Some(match r.byte()? {
                0 => {
                    let len = usize::from(r.byte()?);
                    let text = std::str::from_utf8(r.bytes(len)?)
                        .map_err(|_| Malformed("a role that is not UTF-8"))?;
                    std::borrow::Cow::Owned(text.to_owned())
                }
                code => std::borrow::Cow::Borrowed(
                    *ROLES
                        .get(usize::from(code) - 1)
                        .ok_or(Malformed("a role this version cannot read"))?,
                ),
            })
        };
        items.push(Item {
            kind,
            target,
            user,
            invitation,
            batch,
            message,
            group,
            role,
        });
    }
    if !r.data.is_empty() {
        return Err(Malformed("trailing bytes after the last event"));
    }
    Ok(items)
}

/// The distinct users `events` name, in order of first mention.
pub(crate) fn users_of(events: &[NewEvent]) -> Vec<UserId> {
    let mut users: Vec<UserId> = Vec::new();
    for user in events.iter().filter_map(|e| e.user) {
        if users.last() != Some(&user) && !users.contains(&user) {
            users.push(user);
        }
    }
    users
}

#[cfg(test)]
mod tests {
    use super::*;
    use invites_core::{OrgRole, Role, WebsiteId};

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn sample() -> Vec<NewEvent> {
        let user = UserId(id(1));
        let mut events = vec![NewEvent::user_created(user)];
        for i in 0..200u128 {
            let target = TargetId::Website(WebsiteId(id(100 + i)));
            events.push(NewEvent::member_added(target, user, Role::Viewer));
            events.push(NewEvent::invitation_created(
                TargetId::Group(GroupId(id(1000 + i))),
                InvitationId(id(2000 + i)),
                BatchId(id(7)),
                Role::Admin,
            ));
        }
        events.extend([
            NewEvent::org_member_role_changed(user, OrgRole::Owner),
            NewEvent::website_removed_from_group(GroupId(id(9)), WebsiteId(id(10))),
            NewEvent::batch_resent(BatchId(id(7)), MessageId(id(8))),
            NewEvent::person_erased(),
        ]);
        events
    }

    #[test]
    fn events_round_trip_and_ids_are_stored_once() {
        let events = sample();
        let data = encode(events.iter().map(Item::from));
        assert_eq!(data[0], VERSION);
        let decoded = decode(&data).expect("decode");
        let expected: Vec<Item<'_>> = events.iter().map(Item::from).collect();
        assert_eq!(decoded, expected);
        // 200 websites, 200 groups, 200 invitations, the user, the batch, and four more.
        assert!(data.len() < 606 * 16 + events.len() * 7, "{}", data.len());
        for kind in EventKind::ALL {
            assert_eq!(KINDS[usize::from(kind_code(kind)) - 1], kind);
        }
    }

    #[test]
    fn an_unknown_role_is_spelled_out() {
        let erased = NewEvent::person_erased();
        let mut item = Item::from(&erased);
        item.role = Some("auditor".into());
        let data = encode(std::iter::once(item.clone()));
        assert_eq!(decode(&data).expect("decode"), [item]);
    }

    #[test]
    fn malformed_data_is_refused_never_misread() {
        let data = encode(sample().iter().map(Item::from));
        for cut in [0, 1, 2, 17, data.len() / 2, data.len() - 1] {
            assert!(decode(&data[..cut]).is_err(), "cut at {cut}");
        }
        let mut other = data.clone();
        other[0] = 2;
        assert!(decode(&other).is_err());
        let mut trailing = data.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
        // An unknown kind code.
        let one = encode(std::iter::once(Item::from(&NewEvent::person_erased())));
        let mut bad = one.clone();
        let last = bad.len() - 2;
        bad[last] = 0xee;
        assert!(decode(&bad).is_err());
    }

    #[test]
    fn users_are_listed_once() {
        let (a, b) = (UserId(id(1)), UserId(id(2)));
        let events = [
            NewEvent::user_created(a),
            NewEvent::org_member_removed(b),
            NewEvent::person_erased(),
            NewEvent::org_member_removed(a),
        ];
        assert_eq!(users_of(&events), [a, b]);
    }
}
