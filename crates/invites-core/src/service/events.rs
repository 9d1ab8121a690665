//! [`InviteService::events`]: reading an organization's event log by cursor.

use super::*;
use crate::error::{ErrorCode, InviteError};
use crate::events::{EventCursor, EventPage};
use crate::ids::OrganizationId;

/// The largest page [`InviteService::events`] returns.
pub const MAX_EVENT_PAGE: usize = 1000;

impl InviteService {
    /// A page of `organization`'s events after the cursor `after` (`None`: from the first
    /// event still kept), in position order, at most `limit`.
    ///
    /// A host call (no principal): the host decides who may read an organization's log. A
    /// reader processes the page, stores [`EventPage::next`], and passes it next time; it
    /// never misses an event and never sees one twice, whatever the concurrency of the
    /// writers (positions are given in commit order, see [`events`](crate::events)). An
    /// empty page returns the cursor it was given.
    ///
    /// # Errors
    /// `invalid_query` (field `limit`: 1 to 1000; field `after`: not a cursor this API
    /// returned); [`InviteError::Unavailable`] if the store fails.
    #[tracing::instrument(name = "events", skip_all, fields(organization_id = %organization, items))]
    pub async fn events(
        &self,
        organization: OrganizationId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<EventPage, InviteError> {
        if limit == 0 || limit > MAX_EVENT_PAGE {
            return Err(InviteError::validation(
                ErrorCode::InvalidQuery,
                "limit",
                "must be 1 to 1000",
            ));
        }
        let cursor = after
            .map(EventCursor::parse)
            .transpose()?
            .unwrap_or(EventCursor::START);
        let events = self
            .store
            .read_events(organization, cursor.position(), limit)
            .await?;
        tracing::Span::current().record("items", events.len());
        let next = events.last().map_or(cursor, |e| e.cursor()).to_string();
        Ok(EventPage { events, next })
    }
}
