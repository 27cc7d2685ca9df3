//! Situation report — lägesbild. The title, validity and `general` sections go to every
//! partner; `on_site` sections to partners assigned to the place (posting them is the
//! police's release, OSL 18:1, 10:2); `police_only` sections to the police alone.

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::web::Bytes;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    format_time, next_batch, parse_time, slug, text, Cursor, Decider, ListFilter, Shown, MAX_SCAN,
};
use crate::error::AppError;
use crate::policy::{Action, Resource};
use crate::storage::ids::in_ids;
use crate::storage::models::{ReportSection, SituationReport, User};
use crate::storage::schema::{report_sections, situation_reports};
use crate::storage::{new_id, now_micros, DbConnection};

pub const AUDIENCES: &[&str] = &["general", "on_site", "police_only"];
const MAX_SECTIONS: usize = 20;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSection {
    /// general | on_site | police_only
    pub audience: String,
    pub body: String,
}

/// Body of `POST /api/v1/situation-reports`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSituationReport {
    pub place: String,
    pub title: String,
    /// Default: now.
    pub valid_from: Option<String>,
    /// Default: open-ended.
    pub valid_until: Option<String>,
    pub sections: Vec<NewSection>,
}

#[derive(Debug, Clone)]
pub struct ValidSituationReport {
    pub place: String,
    pub title: String,
    pub valid_from: i64,
    pub valid_until: Option<i64>,
    pub sections: Vec<(String, String)>,
}

impl NewSituationReport {
    pub fn validate(&self) -> Result<ValidSituationReport, AppError> {
        if self.sections.len() > MAX_SECTIONS {
            return Err(AppError::bad_request(
                "too_many_sections",
                format!("at most {MAX_SECTIONS} sections"),
            ));
        }
        let sections = self
            .sections
            .iter()
            .map(|s| {
                if !AUDIENCES.contains(&s.audience.as_str()) {
                    return Err(AppError::bad_request(
                        "invalid_audience",
                        format!("audience must be one of: {}", AUDIENCES.join(", ")),
                    ));
                }
                Ok((
                    s.audience.clone(),
                    text("sections.body", &s.body, 1, 10_000)?,
                ))
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        let valid_from = match &self.valid_from {
            Some(v) => parse_time("valid_from", v)?,
            None => now_micros(),
        };
        let valid_until = self
            .valid_until
            .as_deref()
            .map(|v| parse_time("valid_until", v))
            .transpose()?;
        if valid_until.is_some_and(|u| u <= valid_from) {
            return Err(AppError::bad_request(
                "invalid_validity",
                "valid_until must come after valid_from",
            ));
        }
        Ok(ValidSituationReport {
            place: slug("place", &self.place)?,
            title: text("title", &self.title, 1, 200)?,
            valid_from,
            valid_until,
            sections,
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SectionView {
    pub audience: String,
    pub body: String,
}

/// A lägesbild as one user may see it: sections the user may not see are left out
/// without a trace.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SituationReportView {
    pub id: String,
    pub place: String,
    pub created_at: String,
    pub valid_from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub sections: Vec<SectionView>,
}

fn section(audience: &str, r: &SituationReport) -> Resource {
    Resource::ReportSection {
        audience: audience.to_owned(),
        place: r.place_id.clone(),
        author_id: r.author_id.clone(),
        author_org_id: r.author_org_id.clone(),
    }
}

/// Audiences of `r` the user may read (`general` also covers the title).
fn allowed_audiences(d: &Decider, r: &SituationReport) -> Vec<&'static str> {
    AUDIENCES
        .iter()
        .copied()
        .filter(|a| d.allows(Action::Read, &section(a, r)))
        .collect()
}

/// What a create is decided on: the header (`general`) and every section as it would be
/// stored. All must be allowed.
pub fn create_resources(v: &ValidSituationReport, d: &Decider) -> Vec<Resource> {
    let p = d.principal();
    let mut audiences: Vec<&str> = vec!["general"];
    for (a, _) in &v.sections {
        if !audiences.contains(&a.as_str()) {
            audiences.push(a);
        }
    }
    audiences
        .into_iter()
        .map(|a| Resource::ReportSection {
            audience: a.to_owned(),
            place: v.place.clone(),
            author_id: p.user_id.clone(),
            author_org_id: p.organization_id.clone(),
        })
        .collect()
}

pub fn insert(
    conn: &mut DbConnection,
    v: &ValidSituationReport,
    author: &User,
) -> Result<String, AppError> {
    let report = SituationReport {
        id: new_id(),
        place_id: v.place.clone(),
        title: v.title.clone(),
        valid_from: v.valid_from,
        valid_until: v.valid_until,
        author_id: author.id.clone(),
        author_org_id: author.organization_id.clone(),
        created_at: now_micros(),
        legal_hold: false,
    };
    diesel::insert_into(situation_reports::table)
        .values(&report)
        .execute(conn)?;
    for (i, (audience, body)) in v.sections.iter().enumerate() {
        diesel::insert_into(report_sections::table)
            .values(ReportSection {
                id: new_id(),
                report_id: report.id.clone(),
                position: i as i32,
                audience: audience.clone(),
                body: body.clone(),
            })
            .execute(conn)?;
    }
    Ok(report.id)
}

/// A report as stored, with all its sections in order: what the read cache keeps.
/// Beside it, worked out once for every read of the cached copy: the policy resource of
/// each audience, and the answer for each set of allowed audiences (serialised the first
/// time a reader with that set asks; the decisions themselves are made on every read).
#[derive(Debug, Clone)]
pub struct StoredReport {
    pub report: SituationReport,
    pub sections: Vec<ReportSection>,
    resources: Vec<Resource>,
    answers: [OnceLock<Option<Answer>>; 1 << AUDIENCES.len()],
}

/// The body of a read, as JSON, and the parts it discloses (for the audit entry).
#[derive(Debug, Clone)]
pub struct Answer {
    pub body: Bytes,
    pub parts: Vec<&'static str>,
}

impl StoredReport {
    pub fn new(report: SituationReport, sections: Vec<ReportSection>) -> Self {
        let resources = AUDIENCES.iter().map(|a| section(a, &report)).collect();
        StoredReport {
            report,
            sections,
            resources,
            answers: Default::default(),
        }
    }

    /// The read as this principal may see it: `None` when no part is allowed.
    pub fn answer(&self, d: &Decider) -> Option<&Answer> {
        let mut mask = 0usize;
        for (i, resource) in self.resources.iter().enumerate() {
            if d.allows(Action::Read, resource) {
                mask |= 1 << i;
            }
        }
        let slot = self.answers.get(mask)?;
        slot.get_or_init(|| {
            let audiences: Vec<&'static str> = AUDIENCES
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, a)| *a)
                .collect();
            let shown = view_of(&self.report, &self.sections, &audiences)?;
            let body = serde_json::to_vec(&shown.view).ok()?;
            Some(Answer {
                body: Bytes::from(body),
                parts: shown.parts,
            })
        })
        .as_ref()
    }
}

fn views(
    conn: &mut DbConnection,
    d: &Decider,
    rows: Vec<SituationReport>,
) -> Result<Vec<Shown<SituationReportView>>, AppError> {
    let decided: Vec<(SituationReport, Vec<&'static str>)> = rows
        .into_iter()
        .map(|r| {
            let a = allowed_audiences(d, &r);
            (r, a)
        })
        .filter(|(_, a)| !a.is_empty())
        .collect();
    let ids: Vec<&str> = decided.iter().map(|(r, _)| r.id.as_str()).collect();
    let mut sections: HashMap<String, Vec<ReportSection>> = HashMap::new();
    if !ids.is_empty() {
        for s in load_sections(conn, &ids)? {
            sections.entry(s.report_id.clone()).or_default().push(s);
        }
    }
    Ok(decided
        .into_iter()
        .filter_map(|(r, audiences)| {
            let s = sections.remove(&r.id).unwrap_or_default();
            view_of(&r, &s, &audiences)
        })
        .collect())
}

/// The sections of these reports, in order.
fn load_sections(conn: &mut DbConnection, ids: &[&str]) -> Result<Vec<ReportSection>, AppError> {
    let q = report_sections::table
        .order((report_sections::report_id, report_sections::position))
        .select(ReportSection::as_select());
    // A single report (the hot path) uses a fixed query the connection keeps prepared.
    Ok(match ids {
        [one] => q
            .filter(report_sections::report_id.eq(*one))
            .load::<ReportSection>(conn)?,
        _ => q
            .filter(in_ids(report_sections::report_id, ids.iter().copied()))
            .load::<ReportSection>(conn)?,
    })
}

/// The report as shown with these audiences allowed; `None` when nothing is disclosed.
fn view_of(
    r: &SituationReport,
    sections: &[ReportSection],
    audiences: &[&'static str],
) -> Option<Shown<SituationReportView>> {
    let shown_sections: Vec<SectionView> = sections
        .iter()
        .filter(|s| audiences.contains(&s.audience.as_str()))
        .map(|s| SectionView {
            audience: s.audience.clone(),
            body: s.body.clone(),
        })
        .collect();
    // Audit names the parts actually disclosed, not merely allowed.
    let mut parts: Vec<&'static str> = Vec::new();
    if audiences.contains(&"general") {
        parts.push("general");
    }
    for a in audiences {
        if *a != "general" && shown_sections.iter().any(|s| s.audience == *a) {
            parts.push(a);
        }
    }
    if parts.is_empty() {
        return None;
    }
    let view = SituationReportView {
        id: r.id.clone(),
        place: r.place_id.clone(),
        created_at: format_time(r.created_at),
        valid_from: format_time(r.valid_from),
        valid_until: r.valid_until.map(format_time),
        title: audiences.contains(&"general").then(|| r.title.clone()),
        sections: shown_sections,
    };
    Some(Shown {
        view,
        id: r.id.clone(),
        parts,
    })
}

/// The report as this principal may see it, decided on a stored (possibly cached) copy.
pub fn show(d: &Decider, stored: &StoredReport) -> Option<Shown<SituationReportView>> {
    let audiences = allowed_audiences(d, &stored.report);
    if audiences.is_empty() {
        return None;
    }
    view_of(&stored.report, &stored.sections, &audiences)
}

/// Reads one report with all its sections (for the cache: decided per request).
pub fn load(conn: &mut DbConnection, id: &str) -> Result<Option<StoredReport>, AppError> {
    let Some(report) = situation_reports::table
        .filter(situation_reports::id.eq(id))
        .select(SituationReport::as_select())
        .first::<SituationReport>(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let sections = load_sections(conn, &[id])?;
    Ok(Some(StoredReport::new(report, sections)))
}

/// One report as this principal may see it.
pub fn get(
    conn: &mut DbConnection,
    d: &Decider,
    id: &str,
) -> Result<Option<Shown<SituationReportView>>, AppError> {
    Ok(load(conn, id)?.and_then(|s| show(d, &s)))
}

/// Newest first by time posted.
pub fn list(
    conn: &mut DbConnection,
    d: &Decider,
    f: &ListFilter,
) -> Result<(Vec<Shown<SituationReportView>>, Option<String>), AppError> {
    let mut out = Vec::new();
    let mut cursor = f.cursor.clone();
    let mut scanned = 0usize;
    let mut batch = 0;
    let now = now_micros();
    loop {
        batch = next_batch(f.limit, batch, scanned);
        let mut q = situation_reports::table
            .select(SituationReport::as_select())
            .into_boxed();
        if let Some(p) = &f.place {
            q = q.filter(situation_reports::place_id.eq(p.clone()));
        }
        if let Some(s) = f.since {
            q = q.filter(situation_reports::created_at.ge(s));
        }
        if let Some(u) = f.until {
            q = q.filter(situation_reports::created_at.lt(u));
        }
        if f.current {
            q = q.filter(situation_reports::valid_from.le(now)).filter(
                situation_reports::valid_until
                    .is_null()
                    .or(situation_reports::valid_until.gt(now)),
            );
        }
        if let Some(c) = &cursor {
            q = q.filter(
                situation_reports::created_at
                    .lt(c.time)
                    .or(situation_reports::created_at
                        .eq(c.time)
                        .and(situation_reports::id.lt(c.id.clone()))),
            );
        }
        let rows: Vec<SituationReport> = q
            .order((
                situation_reports::created_at.desc(),
                situation_reports::id.desc(),
            ))
            .limit(batch)
            .load(conn)?;
        let exhausted = (rows.len() as i64) < batch;
        scanned += rows.len();
        let mut last_key = None;
        let mut page_full = false;
        let mut picked = Vec::new();
        for r in rows {
            last_key = Some(Cursor {
                time: r.created_at,
                id: r.id.clone(),
            });
            if !allowed_audiences(d, &r).is_empty() {
                picked.push(r);
                if (out.len() + picked.len()) as i64 == f.limit {
                    page_full = true;
                    break;
                }
            }
        }
        out.extend(views(conn, d, picked)?);
        if page_full || (!exhausted && scanned >= MAX_SCAN) {
            return Ok((out, last_key.map(|c| f.seal.seal(&c))));
        }
        if exhausted {
            return Ok((out, None));
        }
        cursor = last_key;
    }
}
