//! Situation report — lägesbild. `general` sections go to every partner; `on_site`
//! sections to partners assigned to the place (posting them is the police's release,
//! OSL 18:1, 10:2); `police_only` sections to the police alone. The title, place and
//! validity show only together with a section the reader may see: a report with none is
//! a 404 and absent from lists (the title can itself be intelligence).

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::visibility::{slice_rows, RecordKind, SliceQuery};
use super::{Cursor, Decider};
use crate::error::AppError;
use crate::fields::{format_time, parse_time, slug, text};
use crate::policy::scope::OrgRelation;
use crate::policy::{self, Audience, Resource};
use crate::storage::ids::in_ids;
use crate::storage::models::{ReportSection, SituationReport, User};
use crate::storage::schema::{report_sections, situation_reports};
use crate::storage::{new_id, now_micros, DbConnection};

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
    pub sections: Vec<(Audience, String)>,
}

impl NewSituationReport {
    pub fn validate(&self) -> Result<ValidSituationReport, AppError> {
        if self.sections.len() > MAX_SECTIONS {
            return Err(AppError::bad_request(
                "too_many_sections",
                format!("at most {MAX_SECTIONS} sections"),
            ));
        }
        // The title shows only with a section the reader may see: a report without
        // sections would be shown to no one.
        if self.sections.is_empty() {
            return Err(AppError::bad_request(
                "no_sections",
                "a lägesbild needs at least one section (audience general, on_site or police_only)",
            ));
        }
        let sections = self
            .sections
            .iter()
            .map(|s| {
                let audience = Audience::parse(&s.audience).ok_or_else(|| {
                    AppError::bad_request(
                        "invalid_audience",
                        format!("audience must be one of: {}", Audience::listed()),
                    )
                })?;
                Ok((audience, text("sections.body", &s.body, 1, 10_000)?))
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

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SectionView {
    pub audience: Audience,
    pub body: String,
}

/// A lägesbild as one user may see it: sections the user may not see are left out
/// without a trace; the header comes only with a section the user may see.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SituationReportView {
    pub id: String,
    pub place: String,
    pub created_at: String,
    pub valid_from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    pub title: String,
    pub sections: Vec<SectionView>,
}

/// What a new report is decided on: every section as it would be stored (each audience
/// once). All must be allowed.
pub fn create_resources(v: &ValidSituationReport, d: &Decider) -> Vec<Resource> {
    let p = d.principal();
    let mut audiences: Vec<Audience> = v.sections.iter().map(|(a, _)| *a).collect();
    audiences.sort();
    audiences.dedup();
    audiences
        .into_iter()
        .map(|audience| Resource::ReportSection {
            audience,
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
) -> Result<StoredReport, AppError> {
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
    let mut sections = Vec::with_capacity(v.sections.len());
    for (i, (audience, body)) in v.sections.iter().enumerate() {
        let section = ReportSection {
            id: new_id(),
            report_id: report.id.clone(),
            position: i as i32,
            audience: audience.as_str().to_owned(),
            body: body.clone(),
        };
        diesel::insert_into(report_sections::table)
            .values(&section)
            .execute(conn)?;
        sections.push((*audience, section));
    }
    Ok(StoredReport { report, sections })
}

/// A report as stored, with all its sections in order.
pub struct StoredReport {
    report: SituationReport,
    /// Sections whose audience is known (an unknown one is shown to no one).
    sections: Vec<(Audience, ReportSection)>,
}

impl StoredReport {
    pub fn id(&self) -> &str {
        &self.report.id
    }
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

/// The lägesbild kind in the visibility pipeline; its part is a section's audience.
pub struct SituationReports;

impl RecordKind for SituationReports {
    const KIND: policy::RecordKind = policy::RecordKind::SituationReport;
    type Row = SituationReport;
    type Stored = StoredReport;
    type Part = Audience;
    type View = SituationReportView;

    /// Newest first by the time posted.
    fn key(row: &SituationReport) -> Cursor {
        Cursor {
            time: row.created_at,
            id: row.id.clone(),
        }
    }

    fn row(stored: &StoredReport) -> &SituationReport {
        &stored.report
    }

    fn load(conn: &mut DbConnection, id: &str) -> Result<Option<SituationReport>, AppError> {
        Ok(situation_reports::table
            .filter(situation_reports::id.eq(id))
            .select(SituationReport::as_select())
            .first::<SituationReport>(conn)
            .optional()?)
    }

    fn load_slice(
        conn: &mut DbConnection,
        q: &SliceQuery<'_>,
    ) -> Result<Vec<SituationReport>, AppError> {
        slice_rows!(
            conn, q, situation_reports, SituationReport,
            time: created_at, owner: author_id, owner_org: author_org_id,
            place: situation_reports::place_id, place_column: place_id,
            orgs: |rel: OrgRelation, org: String| -> Pred<situation_reports::table> {
                if rel.filed_here() {
                    Box::new(situation_reports::author_org_id.eq(org))
                } else {
                    Box::new(situation_reports::author_org_id.ne(org))
                }
            },
            contents: |c: &Content, _now| -> Option<Pred<situation_reports::table>> {
                match c {
                    Content::Section(a) => Some(Box::new(
                        diesel::dsl::sql::<Bool>(
                            "EXISTS (SELECT 1 FROM report_sections s \
                             WHERE s.report_id = situation_reports.id AND s.audience = ",
                        )
                        .bind::<Text, _>(a.as_str())
                        .sql(")"),
                    )),
                    _ => None,
                }
            },
            // `current`: valid now.
            extra: |sq| -> Option<Pred<situation_reports::table>> {
                sq.filter.current.then(|| -> Pred<situation_reports::table> {
                    Box::new(
                        situation_reports::valid_from.le(sq.now).and(
                            situation_reports::valid_until
                                .is_null()
                                .or(situation_reports::valid_until.assume_not_null().gt(sq.now)),
                        ),
                    )
                })
            },
        )
    }

    fn attach(
        conn: &mut DbConnection,
        rows: Vec<SituationReport>,
    ) -> Result<Vec<StoredReport>, AppError> {
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let mut sections: HashMap<String, Vec<(Audience, ReportSection)>> = HashMap::new();
        if !ids.is_empty() {
            for s in load_sections(conn, &ids)? {
                if let Some(a) = Audience::parse(&s.audience) {
                    sections
                        .entry(s.report_id.clone())
                        .or_default()
                        .push((a, s));
                }
            }
        }
        Ok(rows
            .into_iter()
            .map(|report| StoredReport {
                sections: sections.remove(&report.id).unwrap_or_default(),
                report,
            })
            .collect())
    }

    /// One part per audience the report has sections for.
    fn parts(s: &StoredReport, _now: i64) -> Vec<(Audience, Resource)> {
        let mut audiences: Vec<Audience> = s.sections.iter().map(|(a, _)| *a).collect();
        audiences.sort();
        audiences.dedup();
        audiences
            .into_iter()
            .map(|audience| {
                (
                    audience,
                    Resource::ReportSection {
                        audience,
                        place: s.report.place_id.clone(),
                        author_id: s.report.author_id.clone(),
                        author_org_id: s.report.author_org_id.clone(),
                    },
                )
            })
            .collect()
    }

    fn part_name(part: Audience) -> &'static str {
        part.as_str()
    }

    fn view(s: &StoredReport, parts: &[Audience]) -> SituationReportView {
        let r = &s.report;
        SituationReportView {
            id: r.id.clone(),
            place: r.place_id.clone(),
            created_at: format_time(r.created_at),
            valid_from: format_time(r.valid_from),
            valid_until: r.valid_until.map(format_time),
            title: r.title.clone(),
            sections: s
                .sections
                .iter()
                .filter(|(a, _)| parts.contains(a))
                .map(|(a, sec)| SectionView {
                    audience: *a,
                    body: sec.body.clone(),
                })
                .collect(),
        }
    }

    fn mask(parts: &[Audience]) -> Option<usize> {
        Some(parts.iter().fold(0, |m, a| m | (1 << (*a as usize))))
    }
}
