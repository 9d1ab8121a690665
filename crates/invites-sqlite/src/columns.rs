//! Column encoding and decoding: ids as 16-byte BLOBs, timestamps as INTEGER milliseconds, enums as
//! TEXT tags; a value this code cannot have written is `StoreError::Incompatible`.
//!
//! A decoding error names the column, never the value (which may be an address or a name);
//! [`decode`] turns it into an [`Unreadable`] so that a read of many rows can leave that one
//! out (see the crate docs, "Rows this version cannot read").

use crate::error::Corrupt;
use invites_core::{
    Email, MessageStatus, OrgRole, PersonName, Role, StoredStatus, TargetId, TargetKind, Timestamp,
};
use rusqlite::Row;
use rusqlite::types::{Type, Value};
use uuid::Uuid;

pub(crate) fn corrupt(index: usize, ty: Type, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, ty, Box::new(Corrupt(what)))
}

/// A stored row this version cannot decode: the core's type, which every backend reports alike.
pub(crate) use invites_core::UnreadableRow as Unreadable;

/// The column index of a decoding error (a value this version cannot read); `None` for any
/// other error (I/O, busy, a bad statement). The one list of what counts as an unreadable
/// value, for row decoding and [`Error`](crate::error::Error)'s classification alike.
pub(crate) fn unreadable_column(e: &rusqlite::Error) -> Option<usize> {
    match e {
        rusqlite::Error::FromSqlConversionFailure(index, ..)
        | rusqlite::Error::IntegralValueOutOfRange(index, _)
        | rusqlite::Error::Utf8Error(index, _)
        | rusqlite::Error::InvalidColumnType(index, ..) => Some(*index),
        _ => None,
    }
}

/// Decodes one row of `table` with `decode_row`: `Ok(Ok(value))`, `Ok(Err(unreadable))` when a
/// stored value cannot be decoded, `Err` for any other failure.
pub(crate) fn decode<T>(
    table: &'static str,
    row: &Row<'_>,
    decode_row: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Result<T, Unreadable>> {
    match decode_row(row) {
        Ok(value) => Ok(Ok(value)),
        Err(e) => match unreadable_column(&e) {
            Some(index) => Ok(Err(Unreadable {
                table,
                column: row
                    .as_ref()
                    .column_name(index)
                    .map_or_else(|_| "(unknown)".to_owned(), str::to_owned),
                row: get_uuid(row, 0).ok(),
            })),
            None => Err(e),
        },
    }
}

/// Decodes every row of `rows` with `decode_row`, leaving out (and reporting) the rows that
/// cannot be decoded.
pub(crate) fn decode_all<T>(
    table: &'static str,
    mut rows: rusqlite::Rows<'_>,
    decode_row: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        match decode(table, row, &decode_row)? {
            Ok(value) => out.push(value),
            Err(unreadable) => unreadable.report_skipped(),
        }
    }
    Ok(out)
}

pub(crate) fn get_uuid(row: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    Ok(Uuid::from_bytes(row.get::<_, [u8; 16]>(index)?))
}

pub(crate) fn get_ts(row: &Row<'_>, index: usize) -> rusqlite::Result<Timestamp> {
    Ok(Timestamp::from_millis(row.get(index)?))
}

pub(crate) fn get_email(row: &Row<'_>, index: usize) -> rusqlite::Result<Email> {
    let text: String = row.get(index)?;
    Email::from_stored(&text)
        .ok_or_else(|| corrupt(index, Type::Text, "not a normalised email".into()))
}

pub(crate) fn get_name(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<PersonName>> {
    let Some(text) = row.get::<_, Option<String>>(index)? else {
        return Ok(None);
    };
    PersonName::from_stored(&text)
        .map(Some)
        .ok_or_else(|| corrupt(index, Type::Text, "not a valid name".into()))
}

pub(crate) fn get_tag<T>(
    row: &Row<'_>,
    index: usize,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    parse(&text).ok_or_else(|| corrupt(index, Type::Text, "not a known tag".into()))
}

pub(crate) fn get_role(row: &Row<'_>, index: usize) -> rusqlite::Result<Role> {
    get_tag(row, index, Role::parse)
}

pub(crate) fn get_org_role(row: &Row<'_>, index: usize) -> rusqlite::Result<OrgRole> {
    get_tag(row, index, OrgRole::parse)
}

pub(crate) fn get_kind(row: &Row<'_>, index: usize) -> rusqlite::Result<TargetKind> {
    get_tag(row, index, TargetKind::parse)
}

pub(crate) fn get_invitation_status(row: &Row<'_>, index: usize) -> rusqlite::Result<StoredStatus> {
    get_tag(row, index, StoredStatus::parse)
}

pub(crate) fn get_message_status(row: &Row<'_>, index: usize) -> rusqlite::Result<MessageStatus> {
    get_tag(row, index, MessageStatus::parse)
}

pub(crate) fn get_u32(row: &Row<'_>, index: usize) -> rusqlite::Result<u32> {
    let n: i64 = row.get(index)?;
    u32::try_from(n).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, n))
}

pub(crate) fn get_bool(row: &Row<'_>, index: usize) -> rusqlite::Result<bool> {
    match row.get::<_, i64>(index)? {
        0 => Ok(false),
        1 => Ok(true),
        n => Err(rusqlite::Error::IntegralValueOutOfRange(index, n)),
    }
}

/// The SQL parameter of a name.
pub(crate) fn name_param(name: &Option<PersonName>) -> Option<&str> {
    name.as_ref().map(PersonName::as_str)
}

/// `?first, ?first+1, ...` (`n` numbered placeholders), for an `IN (...)` list.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The membership table and its target column for a target kind (static names only).
pub(crate) fn membership_table(kind: TargetKind) -> (&'static str, &'static str) {
    match kind {
        TargetKind::Website => ("website_members", "website_id"),
        TargetKind::Group => ("group_members", "group_id"),
    }
}

/// The ids of `targets` of one kind, in order.
pub(crate) fn ids_of_kind(
    targets: impl IntoIterator<Item = TargetId>,
    kind: TargetKind,
) -> Vec<Uuid> {
    targets
        .into_iter()
        .filter(|t| t.kind() == kind)
        .map(|t| t.uuid())
        .collect()
}

pub(crate) fn blob(id: Uuid) -> Value {
    Value::Blob(id.as_bytes().to_vec())
}

pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
