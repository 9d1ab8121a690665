//! A stored row a backend cannot decode, as every backend reports it.
//!
//! A row can be unreadable because it is corrupt, or because another version or a person wrote
//! a value this version does not know. A read of many rows leaves such a row out and reports
//! it, so that one bad row never blocks the others; a read of one row returns it as an error.
//! Either way the report names the table, the column and the row's id, never the value, which
//! may be an address or a name.

use uuid::Uuid;

/// A stored row this version cannot decode: its table, the column that failed and the row's
/// id. Its text names the column and never the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stored row could not be read: column {table}.{column}")]
pub struct UnreadableRow {
    /// The table.
    pub table: &'static str,
    /// The column whose value could not be decoded.
    pub column: String,
    /// The row's id, if the backend could read one (for a membership row: the target's or the
    /// organization's id).
    pub row: Option<Uuid>,
}

impl UnreadableRow {
    /// Reports a row a read of many rows left out: a `warn` event with the table, column and
    /// row id.
    pub fn report_skipped(&self) {
        tracing::warn!(
            table = self.table,
            column = %self.column,
            row = ?self.row,
            "left out a stored row this version cannot read"
        );
    }

    /// Reports a due message the delivery claim set aside (marked failed) because it cannot be
    /// read: a `warn` event with the same fields.
    pub fn report_set_aside(&self) {
        tracing::warn!(
            table = self.table,
            column = %self.column,
            row = ?self.row,
            "outbox: set aside a due message this version cannot read (marked failed)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_the_table_and_column_and_not_the_row() {
        let row = UnreadableRow {
            table: "invitations",
            column: "email".into(),
            row: Some(Uuid::from_u128(7)),
        };
        assert_eq!(
            row.to_string(),
            "stored row could not be read: column invitations.email"
        );
    }
}
