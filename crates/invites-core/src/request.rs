//! The bulk invite request: its exact JSON (docs/contract.md §2), parsing with typed errors, and
//! validation into a [`ValidatedRequest`].

use crate::error::{ErrorCode, InviteError};
use crate::ids::{GroupId, TargetId, TargetKind, WebsiteId};
use crate::invitee::{Email, PersonName, Role};
use crate::limits::{MAX_ID_ARRAY_LEN, MAX_REQUEST_BODY_BYTES, echo_field};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashSet;
use uuid::Uuid;

/// Most targets one request may name.
pub const MAX_TARGETS: usize = 50;

/// How the user is invited.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteMethod {
    /// Add the user at once; no email.
    Direct,
    /// Create invitations and send one consolidated email.
    Email,
}

impl InviteMethod {
    /// `"direct"` or `"email"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            InviteMethod::Direct => "direct",
            InviteMethod::Email => "email",
        }
    }
}

/// The request body of `POST /api/v1/invites/bulk`, as received.
///
/// Parse it with [`BulkInviteRequest::from_json`] to get a typed [`InviteError`] naming the
/// field, or through serde (`serde_json::from_str`), which applies the same rules and puts the
/// same words in a serde error. Value rules (counts, duplicates, email syntax, names) are
/// checked by [`BulkInviteRequest::validate`], which `InviteService::bulk_invite` calls.
///
/// ```
/// use invites_core::{BulkInviteRequest, ErrorCode, InviteMethod};
///
/// let req = BulkInviteRequest::from_json(br#"{
///     "invite_method": "email",
///     "email": "Ann@Example.com",
///     "website_ids": ["123e4567-e89b-12d3-a456-426614174000"]
/// }"#).unwrap();
/// assert_eq!(req.invite_method, InviteMethod::Email);
///
/// let err = BulkInviteRequest::from_json(br#"{"invite_method": "email", "emial": "x"}"#).unwrap_err();
/// assert_eq!(err.code(), ErrorCode::UnknownField);
/// assert_eq!(err.field(), Some("emial"));
/// ```
///
/// # Decisions where the contract is silent, all tested
///
/// - An explicit `null` for an optional field is the same as leaving it out (`"role": null`
///   means viewer, `"website_ids": null` means the list is absent).
/// - An empty or all-whitespace name is treated as absent.
/// - Errors are reported one at a time, in this order: `malformed_json`, `unknown_field`
///   (the first in key order), then the fields in the order `invite_method`, `email`, `role`,
///   `website_ids`, `group_ids`, `first_name`, `last_name` for type errors, then the target
///   rules (`mutually_exclusive_targets`, `missing_targets`, `invalid_target_count`,
///   `duplicate_target`), then email and name values.
/// - Limits come first (see the crate docs, `# Limits`): a body over
///   [`MAX_REQUEST_BODY_BYTES`] is `body_too_large` before it is
///   decoded, and an id array longer than [`MAX_ID_ARRAY_LEN`] (ten
///   times [`MAX_TARGETS`]) is `invalid_target_count` as soon as its length is seen, before any
///   element is parsed (so it wins over every other error). Arrays of 51 up to that length
///   are parsed and reported in the order above.
///   An unknown field is echoed cut to
///   [`MAX_ECHOED_FIELD_BYTES`](crate::MAX_ECHOED_FIELD_BYTES), control characters replaced.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct BulkInviteRequest {
    /// `direct` or `email`.
    pub invite_method: InviteMethod,
    /// The address, as sent (validated and normalised by `validate`).
    pub email: String,
    /// The role for every target; `None` means viewer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Website targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website_ids: Option<Vec<WebsiteId>>,
    /// Group targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_ids: Option<Vec<GroupId>>,
    /// Optional first name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Optional last name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

const FIELDS: [&str; 7] = [
    "invite_method",
    "email",
    "role",
    "website_ids",
    "group_ids",
    "first_name",
    "last_name",
];

impl BulkInviteRequest {
    /// A request to the given websites, with no names and the default role.
    pub fn websites(
        method: InviteMethod,
        email: &str,
        ids: impl IntoIterator<Item = WebsiteId>,
    ) -> Self {
        BulkInviteRequest {
            invite_method: method,
            email: email.to_owned(),
            role: None,
            website_ids: Some(ids.into_iter().collect()),
            group_ids: None,
            first_name: None,
            last_name: None,
        }
    }

    /// A request to the given groups, with no names and the default role.
    pub fn groups(
        method: InviteMethod,
        email: &str,
        ids: impl IntoIterator<Item = GroupId>,
    ) -> Self {
        BulkInviteRequest {
            invite_method: method,
            email: email.to_owned(),
            role: None,
            website_ids: None,
            group_ids: Some(ids.into_iter().collect()),
            first_name: None,
            last_name: None,
        }
    }

    /// Parses a JSON body of at most [`MAX_REQUEST_BODY_BYTES`].
    ///
    /// # Errors
    /// [`InviteError::Validation`] with `body_too_large` (checked before decoding),
    /// `malformed_json`, `unknown_field`, `invalid_invite_method`, `invalid_email`,
    /// `invalid_role`, `invalid_target_id`, `invalid_target_count` (an id array longer than
    /// [`MAX_ID_ARRAY_LEN`], before its elements are parsed) or
    /// `invalid_name` (wrong JSON types),
    /// naming the field.
    pub fn from_json(body: &[u8]) -> Result<Self, InviteError> {
        if body.len() > MAX_REQUEST_BODY_BYTES {
            return Err(InviteError::validation(
                ErrorCode::BodyTooLarge,
                "body",
                format!("is larger than {MAX_REQUEST_BODY_BYTES} bytes"),
            ));
        }
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            InviteError::validation(
                ErrorCode::MalformedJson,
                "body",
                format!("is not valid JSON: {e}"),
            )
        })?;
        Self::from_value(value)
    }

    /// Parses an already decoded JSON value; see [`BulkInviteRequest::from_json`] (which also
    /// bounds the body's size: prefer it for untrusted bytes).
    ///
    /// # Errors
    /// As [`BulkInviteRequest::from_json`], except `body_too_large`.
    pub fn from_value(value: Value) -> Result<Self, InviteError> {
        let Value::Object(mut map) = value else {
            return Err(InviteError::validation(
                ErrorCode::MalformedJson,
                "body",
                "must be a JSON object",
            ));
        };
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(InviteError::validation(
                ErrorCode::UnknownField,
                echo_field(unknown),
                "is not a known field",
            ));
        }
        let invite_method = match take(&mut map, "invite_method") {
            None => {
                return Err(InviteError::validation(
                    ErrorCode::InvalidInviteMethod,
                    "invite_method",
                    "is required",
                ));
            }
            Some(Value::String(s)) if s == "direct" => InviteMethod::Direct,
            Some(Value::String(s)) if s == "email" => InviteMethod::Email,
            Some(_) => {
                return Err(InviteError::validation(
                    ErrorCode::InvalidInviteMethod,
                    "invite_method",
                    "must be \"direct\" or \"email\"",
                ));
            }
        };
        let email = match take(&mut map, "email") {
            None => {
                return Err(InviteError::validation(
                    ErrorCode::InvalidEmail,
                    "email",
                    "is required",
                ));
            }
            Some(Value::String(s)) => s,
            Some(_) => {
                return Err(InviteError::validation(
                    ErrorCode::InvalidEmail,
                    "email",
                    "must be a string",
                ));
            }
        };
        let role = match take(&mut map, "role") {
            None => None,
            Some(Value::String(s)) if Role::parse(&s).is_some() => Role::parse(&s),
            Some(_) => {
                return Err(InviteError::validation(
                    ErrorCode::InvalidRole,
                    "role",
                    "must be \"admin\" or \"viewer\"",
                ));
            }
        };
        let website_ids = take(&mut map, "website_ids")
            .map(|v| id_list(v, "website_ids"))
            .transpose()?
            .map(|ids| ids.into_iter().map(WebsiteId).collect());
        let group_ids = take(&mut map, "group_ids")
            .map(|v| id_list(v, "group_ids"))
            .transpose()?
            .map(|ids| ids.into_iter().map(GroupId).collect());
        let first_name = name_field(take(&mut map, "first_name"), "first_name")?;
        let last_name = name_field(take(&mut map, "last_name"), "last_name")?;
        Ok(BulkInviteRequest {
            invite_method,
            email,
            role,
            website_ids,
            group_ids,
            first_name,
            last_name,
        })
    }

    /// Checks every value rule and returns the normalised request.
    ///
    /// # Errors
    /// [`InviteError::Validation`] with `mutually_exclusive_targets`, `missing_targets`,
    /// `invalid_target_count`, `duplicate_target` (naming the id), `invalid_email` or
    /// `invalid_name`.
    pub fn validate(&self) -> Result<ValidatedRequest, InviteError> {
        let (field, targets): (&str, Vec<TargetId>) = match (&self.website_ids, &self.group_ids) {
            (Some(_), Some(_)) => {
                return Err(InviteError::validation(
                    ErrorCode::MutuallyExclusiveTargets,
                    "website_ids",
                    "cannot be combined with group_ids; send exactly one of them",
                ));
            }
            (None, None) => {
                return Err(InviteError::validation(
                    ErrorCode::MissingTargets,
                    "website_ids",
                    "or group_ids is required",
                ));
            }
            (Some(w), None) => (
                "website_ids",
                w.iter().map(|id| TargetId::Website(*id)).collect(),
            ),
            (None, Some(g)) => (
                "group_ids",
                g.iter().map(|id| TargetId::Group(*id)).collect(),
            ),
        };
        if targets.is_empty() || targets.len() > MAX_TARGETS {
            return Err(InviteError::validation(
                ErrorCode::InvalidTargetCount,
                field,
                format!("must hold 1 to {MAX_TARGETS} ids, not {}", targets.len()),
            ));
        }
        let mut seen = HashSet::with_capacity(targets.len());
        for (i, t) in targets.iter().enumerate() {
            if !seen.insert(t.uuid()) {
                return Err(InviteError::validation(
                    ErrorCode::DuplicateTarget,
                    format!("{field}[{i}]"),
                    format!("repeats id {}", t.uuid()),
                ));
            }
        }
        let email = Email::parse(&self.email)
            .map_err(|e| InviteError::validation(ErrorCode::InvalidEmail, "email", e.reason()))?;
        let first_name = validate_name(self.first_name.as_deref(), "first_name")?;
        let last_name = validate_name(self.last_name.as_deref(), "last_name")?;
        Ok(ValidatedRequest {
            method: self.invite_method,
            email,
            role: self.role.unwrap_or_default(),
            kind: targets[0].kind(),
            targets,
            first_name,
            last_name,
        })
    }
}

impl<'de> Deserialize<'de> for BulkInviteRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        BulkInviteRequest::from_value(value)
            .map_err(|e| serde::de::Error::custom(format!("{}: {e}", e.code())))
    }
}

fn take(map: &mut Map<String, Value>, key: &str) -> Option<Value> {
    match map.remove(key) {
        Some(Value::Null) | None => None,
        Some(v) => Some(v),
    }
}

fn id_list(v: Value, field: &str) -> Result<Vec<Uuid>, InviteError> {
    let Value::Array(items) = v else {
        return Err(InviteError::validation(
            ErrorCode::InvalidTargetId,
            field,
            "must be an array of UUIDs",
        ));
    };
    if items.len() > MAX_ID_ARRAY_LEN {
        return Err(InviteError::validation(
            ErrorCode::InvalidTargetCount,
            field,
            format!("must hold 1 to {MAX_TARGETS} ids, not {}", items.len()),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Uuid::try_parse(&s).map_err(|_| {
                InviteError::validation(
                    ErrorCode::InvalidTargetId,
                    format!("{field}[{i}]"),
                    "is not a UUID",
                )
            }),
            _ => Err(InviteError::validation(
                ErrorCode::InvalidTargetId,
                format!("{field}[{i}]"),
                "must be a UUID string",
            )),
        })
        .collect()
}

fn name_field(v: Option<Value>, field: &str) -> Result<Option<String>, InviteError> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(InviteError::validation(
            ErrorCode::InvalidName,
            field,
            "must be a string",
        )),
    }
}

fn validate_name(v: Option<&str>, field: &str) -> Result<Option<PersonName>, InviteError> {
    match v {
        None => Ok(None),
        Some(raw) => PersonName::parse(raw)
            .map_err(|reason| InviteError::validation(ErrorCode::InvalidName, field, reason)),
    }
}

/// A request that passed every rule: normalised email, role resolved, targets typed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ValidatedRequest {
    /// Direct or email.
    pub method: InviteMethod,
    /// The normalised address.
    pub email: Email,
    /// The role for every target.
    pub role: Role,
    /// Websites or groups (all of one kind).
    pub kind: TargetKind,
    /// 1 to 50 distinct targets, in request order.
    pub targets: Vec<TargetId>,
    /// First name, if given.
    pub first_name: Option<PersonName>,
    /// Last name, if given.
    pub last_name: Option<PersonName>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{MAX_ECHOED_FIELD_BYTES, MAX_REQUEST_BODY_BYTES};
    use std::time::{Duration, Instant};

    fn body_with_ids(n: usize) -> String {
        let ids = vec!["\"123e4567-e89b-12d3-a456-426614174000\""; n].join(",");
        format!(r#"{{"invite_method":"email","email":"a@b.co","website_ids":[{ids}]}}"#)
    }

    #[test]
    fn a_body_over_the_limit_is_refused_before_decoding() {
        // Not even JSON: the size is checked first.
        let big = vec![b'{'; MAX_REQUEST_BODY_BYTES + 1];
        let e = BulkInviteRequest::from_json(&big).unwrap_err();
        assert_eq!(
            (e.code(), e.field()),
            (ErrorCode::BodyTooLarge, Some("body"))
        );
        assert_eq!(e.code().http_status(), 413);
        // A maximal honest request fits easily.
        let fifty = body_with_ids(MAX_TARGETS);
        assert!(fifty.len() * 3 < MAX_REQUEST_BODY_BYTES);
        assert!(BulkInviteRequest::from_json(fifty.as_bytes()).is_ok());
    }

    #[test]
    fn a_long_id_array_is_refused_before_its_elements_are_parsed() {
        // Past the parse bound, the last one broken: the count is reported, not the element.
        let n = crate::MAX_ID_ARRAY_LEN + 1;
        let mut items: Vec<Value> = (0..n)
            .map(|i| Value::String(Uuid::from_u128(i as u128).to_string()))
            .collect();
        items[n - 1] = Value::String("not-a-uuid".into());
        let value =
            serde_json::json!({"invite_method": "email", "email": "a@b.co", "group_ids": items});
        let e = BulkInviteRequest::from_value(value).unwrap_err();
        assert_eq!(
            (e.code(), e.field()),
            (ErrorCode::InvalidTargetCount, Some("group_ids"))
        );
        // A million elements (through the value path, which has no size limit) are refused
        // without parsing a million UUIDs.
        let million = Value::Array(vec![Value::Bool(true); 1_000_000]);
        let value = serde_json::json!({"invite_method": "email", "email": "a@b.co", "website_ids": million});
        let started = Instant::now();
        let e = BulkInviteRequest::from_value(value).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidTargetCount);
        assert!(started.elapsed() < Duration::from_secs(2));
        // Just over 50 keeps the documented order: the bad element is reported first.
        let mut items: Vec<Value> = (0..51)
            .map(|i| Value::String(Uuid::from_u128(i).to_string()))
            .collect();
        items[50] = Value::String("not-a-uuid".into());
        let value =
            serde_json::json!({"invite_method": "email", "email": "a@b.co", "website_ids": items});
        let e = BulkInviteRequest::from_value(value).unwrap_err();
        assert_eq!(
            (e.code(), e.field()),
            (ErrorCode::InvalidTargetId, Some("website_ids[50]"))
        );
    }

    #[test]
    fn unknown_field_names_are_echoed_bounded_and_clean() {
        let name = format!("x\r\n{}", "y".repeat(10_000));
        let body = serde_json::json!({ name: 1, "invite_method": "email" }).to_string();
        let e = BulkInviteRequest::from_json(body.as_bytes()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnknownField);
        let field = e.field().unwrap();
        assert!(
            field.len() <= MAX_ECHOED_FIELD_BYTES + '…'.len_utf8(),
            "{}",
            field.len()
        );
        assert!(field.starts_with("x\u{fffd}\u{fffd}yyy") && field.ends_with('…'));
        assert!(!e.to_string().contains('\n'));
    }
}
