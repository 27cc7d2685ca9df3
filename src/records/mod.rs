//! The three record kinds and the one visibility layer they all go through.
//!
//! `visibility` is the pipeline: which rows a list reads (the candidate predicate the
//! policy gives for the principal, as indexed queries), the keyset-paged loop, the
//! decision on every part of every row that comes back, and the rule that a record with
//! no visible part does not exist for the user. Each kind plugs into it through
//! [`visibility::RecordKind`]: its row, its parts, its view, its sort key.

pub mod cursor;
pub mod observations;
pub mod referrals;
pub mod situation_reports;
pub mod visibility;

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::AppError;
use crate::fields::{parse_time, slug};
use crate::policy::{Action, PolicyEngine, PrincipalAttrs, RecordKind, Resource};

pub use cursor::{Binding, Cursor, CursorSeal};

/// Most items a list returns at once, and the default.
pub const MAX_PAGE: i64 = 100;
pub const DEFAULT_PAGE: i64 = 50;

/// Decides parts for one principal; every read and write asks this, nothing else.
#[derive(Clone)]
pub struct Decider {
    engine: Arc<PolicyEngine>,
    principal: PrincipalAttrs,
}

impl Decider {
    pub fn new(engine: Arc<PolicyEngine>, principal: PrincipalAttrs) -> Self {
        Decider { engine, principal }
    }

    pub fn allows(&self, action: Action, resource: &Resource) -> bool {
        self.engine.is_allowed(&self.principal, action, resource)
    }

    pub fn principal(&self) -> &PrincipalAttrs {
        &self.principal
    }

    pub fn engine(&self) -> &PolicyEngine {
        &self.engine
    }
}

/// Read decisions memoised for one request: the rows of a page share a handful of
/// attribute sets.
pub struct Memo<'d> {
    decider: &'d Decider,
    seen: HashMap<Resource, bool, RandomState>,
}

impl<'d> Memo<'d> {
    pub fn new(decider: &'d Decider) -> Self {
        Memo {
            decider,
            seen: HashMap::default(),
        }
    }

    pub fn reads(&mut self, resource: Resource) -> bool {
        if let Some(allowed) = self.seen.get(&resource) {
            return *allowed;
        }
        let allowed = self.decider.allows(Action::Read, &resource);
        self.seen.insert(resource, allowed);
        allowed
    }
}

/// Filters and paging shared by the record lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only records at this place (slug).
    pub place: Option<String>,
    /// Only records at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only records before this time (RFC 3339).
    pub until: Option<String>,
    /// Page size, 1–100 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page of the same list (same user, same filters).
    pub cursor: Option<String>,
    /// Situation reports only: just those valid now.
    pub current: Option<bool>,
    /// Observations only: just this category.
    pub category: Option<String>,
}

/// Validated list filters.
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub place: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub limit: i64,
    /// Where the previous page ended.
    pub after: Option<Cursor>,
    pub current: bool,
    /// Observations only: just this category.
    pub category: Option<String>,
    /// What the cursors of this list are bound to.
    pub binding: Binding,
}

impl ListQuery {
    /// Validates the filters; the cursor must come from this user's list of this kind
    /// with these same filters.
    pub fn validate(
        &self,
        seal: &CursorSeal,
        user_id: &str,
        kind: RecordKind,
    ) -> Result<ListFilter, AppError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AppError::bad_request(
                "invalid_limit",
                format!("limit must be between 1 and {MAX_PAGE}"),
            ));
        }
        let place = self
            .place
            .as_deref()
            .map(|p| slug("place", p))
            .transpose()?;
        let since = self
            .since
            .as_deref()
            .map(|s| parse_time("since", s))
            .transpose()?;
        let until = self
            .until
            .as_deref()
            .map(|s| parse_time("until", s))
            .transpose()?;
        let current = self.current.unwrap_or(false);
        let category = match self.category.as_deref() {
            None => None,
            Some(c) if kind == RecordKind::Observation && observations::CATEGORIES.contains(&c) => {
                Some(c.to_owned())
            }
            Some(_) if kind == RecordKind::Observation => {
                return Err(AppError::bad_request(
                    "invalid_category",
                    format!(
                        "category must be one of: {}",
                        observations::CATEGORIES.join(", ")
                    ),
                ))
            }
            Some(_) => {
                return Err(AppError::bad_request(
                    "invalid_query",
                    "category filters observations only",
                ))
            }
        };
        let text = |v: Option<i64>| v.map(|t| t.to_string()).unwrap_or_default();
        let binding = Binding::new(
            user_id,
            kind.as_str(),
            &[
                ("place", place.clone().unwrap_or_default()),
                ("since", text(since)),
                ("until", text(until)),
                ("current", current.to_string()),
                ("category", category.clone().unwrap_or_default()),
            ],
        );
        let after = self
            .cursor
            .as_deref()
            .map(|c| seal.open(c, &binding))
            .transpose()?;
        Ok(ListFilter {
            place,
            since,
            until,
            limit,
            after,
            current,
            category,
            binding,
        })
    }
}

/// A page of a list, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// A view, the record's id and sort key, and the parts it discloses (for the audit entry).
pub struct Shown<T> {
    pub view: T,
    pub key: Cursor,
    pub parts: Vec<&'static str>,
}

impl<T> Shown<T> {
    pub fn id(&self) -> &str {
        &self.key.id
    }
}

/// Whether no record of any kind is stored (the demo adds its samples only then).
pub fn is_empty(conn: &mut crate::storage::DbConnection) -> Result<bool, AppError> {
    use crate::storage::schema::{observations, referrals, situation_reports};
    use diesel::prelude::*;
    let none = |n: i64| n == 0;
    Ok(none(observations::table.count().get_result(conn)?)
        && none(situation_reports::table.count().get_result(conn)?)
        && none(referrals::table.count().get_result(conn)?))
}
