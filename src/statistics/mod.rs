//! Statistics (uppföljning): counts over fixed buckets — whole months, quarters or
//! years, whole places — read from aggregates kept when records are filed, so they
//! outlive retention and cost no scan. What may be published is decided per calendar
//! year by [`suppression`]; every query reads from that one decision.

pub mod chart;
pub mod suppression;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::AppError;
use crate::records::observations::CATEGORIES;
use crate::storage::aggregates::observation_counts_between;
use crate::storage::schema::places;
use crate::storage::DbConnection;
use suppression::{Cell, Decision, Period, YearTable, THRESHOLD};

/// At most this many months from `from` to `to`.
const MAX_MONTHS: i32 = 120;
/// At most this many rows in one answer.
const MAX_ROWS: usize = 20_000;

/// Query of `GET /api/v1/statistics/observations`.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatisticsQuery {
    /// First month, `YYYY-MM` (default: January of `to`'s year). Must start a quarter
    /// (year) when grouping by quarter (year).
    pub from: Option<String>,
    /// Last month, `YYYY-MM` (default: December of this year). Must end a quarter
    /// (year) when grouping by quarter (year).
    pub to: Option<String>,
    /// One place (slug): only its rows.
    pub place: Option<String>,
    /// Comma-separated: `place`, `category` and at most one period, `month` (the
    /// default), `quarter` or `year`.
    pub group_by: Option<String>,
}

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct YearMonth {
    pub year: i32,
    /// 1–12.
    pub month: u8,
}

impl YearMonth {
    fn parse(field: &str, s: &str) -> Result<Self, AppError> {
        let bad = || {
            AppError::bad_request(
                "invalid_month",
                format!("{field} must be a month such as 2026-03"),
            )
        };
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u8 = m.parse().map_err(|_| bad())?;
        if y.len() != 4 || m.len() != 2 || !(1..=12).contains(&month) || year < 1970 {
            return Err(bad());
        }
        Ok(YearMonth { year, month })
    }

    fn index(self) -> i32 {
        self.year * 12 + self.month as i32 - 1
    }

    pub fn label(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

/// The period a table is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Month,
    Quarter,
    Year,
}

impl Granularity {
    fn as_str(self) -> &'static str {
        match self {
            Granularity::Month => "month",
            Granularity::Quarter => "quarter",
            Granularity::Year => "year",
        }
    }
}

/// Query of `GET /api/v1/statistics/referrals`.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReferralStatisticsQuery {
    /// First filing month, `YYYY-MM` (as for observations).
    pub from: Option<String>,
    /// Last filing month, `YYYY-MM`.
    pub to: Option<String>,
    /// One receiving organisation (id): only its rows.
    pub organization: Option<String>,
    /// Comma-separated: `organization`, `status` and at most one period, `month` (the
    /// default), `quarter` or `year`.
    pub group_by: Option<String>,
}

/// The two grouping dimensions of a kind of statistics besides the period.
#[derive(Debug, Clone, Copy)]
pub struct Dimensions {
    /// `place` or `organization`.
    pub unit: &'static str,
    /// `category` or `status`.
    pub category: &'static str,
}

const OBSERVATION_DIMENSIONS: Dimensions = Dimensions {
    unit: "place",
    category: "category",
};
const REFERRAL_DIMENSIONS: Dimensions = Dimensions {
    unit: "organization",
    category: "status",
};

/// A validated statistics query.
#[derive(Debug, Clone)]
pub struct Spec {
    pub from: YearMonth,
    pub to: YearMonth,
    /// One place (organisation) only.
    pub unit: Option<String>,
    pub by_unit: bool,
    pub by_category: bool,
    pub period: Granularity,
    pub dimensions: Dimensions,
}

impl Spec {
    /// Validates a query of observation statistics once, at the edge; `now` is this month.
    pub fn parse(q: &StatisticsQuery, now: YearMonth) -> Result<Spec, AppError> {
        Self::parse_with(
            [
                q.from.as_deref(),
                q.to.as_deref(),
                q.place.as_deref(),
                q.group_by.as_deref(),
            ],
            OBSERVATION_DIMENSIONS,
            now,
        )
    }

    /// Same, for referral statistics.
    pub fn parse_referrals(q: &ReferralStatisticsQuery, now: YearMonth) -> Result<Spec, AppError> {
        Self::parse_with(
            [
                q.from.as_deref(),
                q.to.as_deref(),
                q.organization.as_deref(),
                q.group_by.as_deref(),
            ],
            REFERRAL_DIMENSIONS,
            now,
        )
    }

    fn parse_with(
        [from, to, unit, group_by]: [Option<&str>; 4],
        dimensions: Dimensions,
        now: YearMonth,
    ) -> Result<Spec, AppError> {
        let (mut by_unit, mut by_category, mut period) = (false, false, None);
        for g in group_by.unwrap_or("").split(',') {
            let g = g.trim();
            let p = match g {
                "" => continue,
                g if g == dimensions.unit => {
                    by_unit = true;
                    continue;
                }
                g if g == dimensions.category => {
                    by_category = true;
                    continue;
                }
                "month" => Granularity::Month,
                "quarter" => Granularity::Quarter,
                "year" => Granularity::Year,
                other => {
                    return Err(AppError::bad_request(
                        "invalid_group_by",
                        format!(
                            "group_by takes {}, {} and one of month, quarter, year; not `{other}`",
                            dimensions.unit, dimensions.category
                        ),
                    ))
                }
            };
            if period.is_some_and(|q| q != p) {
                return Err(AppError::bad_request(
                    "invalid_group_by",
                    "group_by takes at most one period: month, quarter or year",
                ));
            }
            period = Some(p);
        }
        let period = period.unwrap_or(Granularity::Month);
        let to = match to {
            Some(s) => YearMonth::parse("to", s)?,
            None => YearMonth {
                year: now.year,
                month: 12,
            },
        };
        let from = match from {
            Some(s) => YearMonth::parse("from", s)?,
            None => YearMonth {
                year: to.year,
                month: 1,
            },
        };
        if from > to {
            return Err(AppError::bad_request(
                "invalid_range",
                "from must not come after to",
            ));
        }
        if to.index() - from.index() >= MAX_MONTHS {
            return Err(AppError::bad_request(
                "invalid_range",
                format!("at most {MAX_MONTHS} months from `from` to `to`"),
            ));
        }
        // Whole buckets only: a window that cuts a quarter or a year could be differenced
        // against the whole one.
        let (starts, ends) = match period {
            Granularity::Month => (true, true),
            Granularity::Quarter => (from.month % 3 == 1, to.month % 3 == 0),
            Granularity::Year => (from.month == 1, to.month == 12),
        };
        if !starts || !ends {
            return Err(AppError::bad_request(
                "invalid_range",
                format!(
                    "grouped by {}, from must be the first month of one and to the last month of one",
                    period.as_str()
                ),
            ));
        }
        let unit = unit
            .map(|p| crate::fields::slug(dimensions.unit, p))
            .transpose()?;
        Ok(Spec {
            from,
            to,
            by_unit: by_unit || unit.is_some(),
            unit,
            by_category,
            period,
            dimensions,
        })
    }

    /// What the query asked for, as the audit entry records it.
    pub fn describe(&self) -> Vec<String> {
        let mut groups = Vec::new();
        if self.by_unit {
            groups.push(self.dimensions.unit);
        }
        if self.by_category {
            groups.push(self.dimensions.category);
        }
        groups.push(self.period.as_str());
        let mut out = vec![
            format!("from={}", self.from.label()),
            format!("to={}", self.to.label()),
            format!("group_by={}", groups.join("+")),
        ];
        if let Some(p) = &self.unit {
            out.push(format!("{}={p}", self.dimensions.unit));
        }
        out
    }

    /// The buckets asked for, in order, as (year, period).
    fn periods(&self) -> Vec<(i32, Period)> {
        let mut out = Vec::new();
        for i in self.from.index()..=self.to.index() {
            let (year, m) = (i.div_euclid(12), i.rem_euclid(12) as u8);
            let p = match self.period {
                Granularity::Month => Some(Period::Month(m)),
                Granularity::Quarter => (m % 3 == 0).then_some(Period::Quarter(m / 3)),
                Granularity::Year => (m == 0).then_some(Period::Year),
            };
            out.extend(p.map(|p| (year, p)));
        }
        out
    }
}

/// One cell of a statistics table. Absent keys are not grouped by.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatisticsRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// `2026-03`, `2026-Q1` or `2026`.
    pub period: String,
    /// `null` when suppressed.
    pub count: Option<i64>,
    pub suppressed: bool,
    /// Grouped by place: the mean over all places in the same period (and category),
    /// like the field report's table 1; `null` when that total is suppressed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_with_null"
    )]
    #[schema(value_type = Option<f64>)]
    pub mean_all_places: Option<Option<f64>>,
}

/// Serialises `Some(None)` as `null` and `None` not at all (with skip_serializing_if).
mod serde_with_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Option<f64>>, s: S) -> Result<S::Ok, S::Error> {
        v.flatten().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
        Ok(Some(Option::<f64>::deserialize(d)?))
    }
}

/// A statistics table: `{"rows": [...], "suppressed_below": 5}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatisticsTable {
    pub rows: Vec<StatisticsRow>,
    /// No count under this is published.
    pub suppressed_below: i64,
}

impl StatisticsTable {
    /// RFC 4180 CSV, UTF-8, a header line and every column on every row.
    pub fn to_csv(&self) -> Result<Vec<u8>, AppError> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let io = |e: csv::Error| AppError::Internal(format!("csv: {e}"));
        w.write_record([
            "place",
            "place_name",
            "category",
            "period",
            "count",
            "suppressed",
            "mean_all_places",
        ])
        .map_err(io)?;
        for r in &self.rows {
            let o = |v: &Option<String>| v.clone().unwrap_or_default();
            w.write_record([
                o(&r.place),
                o(&r.place_name),
                o(&r.category),
                r.period.clone(),
                r.count.map(|c| c.to_string()).unwrap_or_default(),
                r.suppressed.to_string(),
                r.mean_all_places
                    .flatten()
                    .map(|m| format!("{m:.1}"))
                    .unwrap_or_default(),
            ])
            .map_err(io)?;
        }
        w.into_inner()
            .map_err(|e| AppError::Internal(format!("csv: {e}")))
    }
}

/// Decisions by year, reused while the year's counts and the places are unchanged (the
/// counts are read on every query, so another instance's writes are always seen).
#[derive(Default)]
pub struct DecisionCache {
    /// By year and the places (or, for referrals, a marker and the organisations).
    years: Mutex<HashMap<(i32, Vec<String>), Decided>>,
}

/// A year's decision with the counts it was decided on.
type Decided = (YearTable, Arc<Decision>);

impl DecisionCache {
    fn decide(&self, year: i32, places: &[String], table: YearTable) -> Arc<Decision> {
        self.decide_grouped(year, places, table, &[])
    }

    fn decide_grouped(
        &self,
        year: i32,
        places: &[String],
        table: YearTable,
        groups: &[suppression::Group],
    ) -> Arc<Decision> {
        if let Ok(years) = self.years.lock() {
            if let Some((t, d)) = years.get(&(year, places.to_vec())) {
                if *t == table {
                    return d.clone();
                }
            }
        }
        let d = Arc::new(Decision::decide_with(&table, groups));
        if let Ok(mut years) = self.years.lock() {
            // Bounded: a query spans at most ten years, and old years rarely change.
            if years.len() > 64 {
                years.clear();
            }
            years.insert((year, places.to_vec()), (table, d.clone()));
        }
        d
    }
}

fn period_label(year: i32, p: Period) -> String {
    match p {
        Period::Month(m) => format!("{year:04}-{:02}", m + 1),
        Period::Quarter(q) => format!("{year:04}-Q{}", q + 1),
        Period::Year => format!("{year:04}"),
    }
}

/// The units (places, organisations) a table has rows for: one, all, or none (totals).
fn chosen_units(
    spec: &Spec,
    index: &HashMap<&str, usize>,
    code: &'static str,
    message: &'static str,
) -> Result<Vec<Option<usize>>, AppError> {
    Ok(match &spec.unit {
        Some(u) => match index.get(u.as_str()) {
            Some(&i) => vec![Some(i)],
            None => return Err(AppError::bad_request(code, message)),
        },
        None if spec.by_unit => {
            let mut all: Vec<usize> = index.values().copied().collect();
            all.sort_unstable();
            all.into_iter().map(Some).collect()
        }
        None => vec![None],
    })
}

/// Observations per place, category and period (the statistics API, pages and report).
pub fn observations(
    conn: &mut DbConnection,
    spec: &Spec,
    cache: &DecisionCache,
) -> Result<StatisticsTable, AppError> {
    let all: Vec<(String, String)> = places::table
        .order(places::id.asc())
        .select((places::id, places::name))
        .load(conn)?;
    let ids: Vec<String> = all.iter().map(|(id, _)| id.clone()).collect();
    let place_index: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i))
        .collect();
    let chosen = chosen_units(
        spec,
        &place_index,
        "unknown_place",
        "no such place; GET /api/v1/places lists them",
    )?;
    let categories: Vec<Option<usize>> = if spec.by_category {
        (0..CATEGORIES.len()).map(Some).collect()
    } else {
        vec![None]
    };
    let periods = spec.periods();
    if periods.len() * chosen.len() * categories.len() > MAX_ROWS {
        return Err(AppError::bad_request(
            "too_many_rows",
            format!("the table would have more than {MAX_ROWS} rows; ask for a shorter range or fewer groups"),
        ));
    }
    let mut decisions: HashMap<i32, Arc<Decision>> = HashMap::new();
    for year in spec.from.year..=spec.to.year {
        let mut table = YearTable::new(ids.len(), CATEGORIES.len());
        let rows =
            observation_counts_between(conn, &format!("{year:04}-01"), &format!("{year:04}-12"))?;
        for (month, place, category, n) in rows {
            let m = month
                .get(5..7)
                .and_then(|m| m.parse::<usize>().ok())
                .unwrap_or(0);
            let k = CATEGORIES.iter().position(|c| *c == category);
            if let (Some(&p), Some(k), 1..=12) = (place_index.get(place.as_str()), k, m) {
                table.add(p, k, m - 1, n);
            }
        }
        decisions.insert(year, cache.decide(year, &ids, table));
    }
    let places_n = ids.len().max(1) as f64;
    let mut rows = Vec::with_capacity(periods.len() * chosen.len() * categories.len());
    for (year, period) in periods {
        let Some(d) = decisions.get(&year) else {
            continue;
        };
        for &place in &chosen {
            for &category in &categories {
                let count = d.get(Cell {
                    place,
                    category,
                    period,
                });
                let mean = place.map(|_| {
                    d.get(Cell {
                        place: None,
                        category,
                        period,
                    })
                    .map(|total| (total as f64 / places_n * 10.0).round() / 10.0)
                });
                rows.push(StatisticsRow {
                    place: place.map(|p| all[p].0.clone()),
                    place_name: place.map(|p| all[p].1.clone()),
                    category: category.map(|k| CATEGORIES[k].to_owned()),
                    period: period_label(year, period),
                    count,
                    suppressed: count.is_none(),
                    mean_all_places: mean,
                });
            }
        }
    }
    Ok(StatisticsTable {
        rows,
        suppressed_below: THRESHOLD,
    })
}

/// This month in Europe/Stockholm.
pub fn this_month() -> YearMonth {
    let label = crate::fields::stockholm_month(crate::storage::now_micros());
    YearMonth::parse("now", &label).unwrap_or(YearMonth {
        year: 2026,
        month: 1,
    })
}

/// Feedback statuses in the order tables show them.
const STATUSES: &[&str] = crate::records::referrals::STATUSES;
/// When the first decision came: none yet, within 14 days of filing, later.
const TIMINGS: &[&str] = &["none", "within_14", "after_14"];

/// The categories of the referral cube are (status, timing); these groups of them are
/// what a table shows: each status (family 1), each timing (family 2), all decided
/// (family 3). Returns the groups and the index of the first status group, the first
/// timing group and the decided group.
fn referral_groups() -> (Vec<suppression::Group>, usize, usize, usize) {
    let (s, t) = (STATUSES.len(), TIMINGS.len());
    let base = s * t;
    let mut groups: Vec<suppression::Group> = (0..s)
        .map(|i| suppression::Group {
            members: (0..t).map(|j| i * t + j).collect(),
            family: 1,
            priority: 0,
        })
        .collect();
    groups.extend((0..t).map(|j| suppression::Group {
        members: (0..s).map(|i| i * t + j).collect(),
        family: 2,
        priority: 0,
    }));
    groups.push(suppression::Group {
        members: (0..s)
            .flat_map(|i| (1..t).map(move |j| i * t + j))
            .collect(),
        family: 3,
        // The feedback times stand on it: the field report's pain point.
        priority: 1,
    });
    (groups, base, base + s, base + s + t)
}

/// How long the first feedback decision took, for one organisation (or all) and period.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FeedbackTimes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiving_organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_name: Option<String>,
    /// Filing period: `2026-03`, `2026-Q1` or `2026`.
    pub period: String,
    /// Referrals filed in the period that have had a decision; `null` when suppressed.
    pub decided: Option<i64>,
    /// Median days from filing to the first decision (`null` when `decided` is).
    pub median_days: Option<i64>,
    /// 90th percentile of the same.
    pub p90_days: Option<i64>,
    /// Share of the decided that were decided within 14 days (0–1; `null` when that
    /// count is suppressed).
    pub share_within_14_days: Option<f64>,
    pub suppressed: bool,
}

/// One cell of the referral table.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReferralRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiving_organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_name: Option<String>,
    /// Feedback status now: pending, investigation_opened, not_opened, already_ongoing, withheld.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Filing period.
    pub period: String,
    /// `null` when suppressed.
    pub count: Option<i64>,
    pub suppressed: bool,
}

/// Orosanmälningar per receiving organisation, status and filing period, with the
/// time to a feedback decision: the field report's pain point, measured.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReferralStatistics {
    pub rows: Vec<ReferralRow>,
    pub feedback_times: Vec<FeedbackTimes>,
    pub suppressed_below: i64,
}

impl ReferralStatistics {
    /// RFC 4180 CSV: the rows, each with its organisation's and period's feedback times.
    pub fn to_csv(&self) -> Result<Vec<u8>, AppError> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let io = |e: csv::Error| AppError::Internal(format!("csv: {e}"));
        w.write_record([
            "receiving_organization",
            "organization_name",
            "status",
            "period",
            "count",
            "suppressed",
            "decided",
            "median_days",
            "p90_days",
            "share_within_14_days",
        ])
        .map_err(io)?;
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        for r in &self.rows {
            let t = self.feedback_times.iter().find(|t| {
                t.period == r.period && t.receiving_organization == r.receiving_organization
            });
            w.write_record([
                o(&r.receiving_organization),
                o(&r.organization_name),
                o(&r.status),
                r.period.clone(),
                n(r.count),
                r.suppressed.to_string(),
                n(t.and_then(|t| t.decided)),
                n(t.and_then(|t| t.median_days)),
                n(t.and_then(|t| t.p90_days)),
                t.and_then(|t| t.share_within_14_days)
                    .map(|s| format!("{s:.2}"))
                    .unwrap_or_default(),
            ])
            .map_err(io)?;
        }
        w.into_inner()
            .map_err(|e| AppError::Internal(format!("csv: {e}")))
    }
}

/// Periods in order of first appearance, and one series per label with a value per period.
fn series_of<'a>(
    rows: impl Iterator<Item = (String, &'a str, Option<i64>)>,
) -> (Vec<String>, Vec<chart::Series>) {
    let mut periods: Vec<String> = Vec::new();
    let mut series: Vec<chart::Series> = Vec::new();
    for (label, period, value) in rows {
        let i = match periods.iter().position(|p| p == period) {
            Some(i) => i,
            None => {
                periods.push(period.to_owned());
                periods.len() - 1
            }
        };
        let j = match series.iter().position(|s| s.label == label) {
            Some(j) => j,
            None => {
                series.push(chart::Series {
                    label,
                    values: Vec::new(),
                });
                series.len() - 1
            }
        };
        let values = &mut series[j].values;
        if values.len() <= i {
            values.resize(i + 1, None);
        }
        values[i] = value;
    }
    (periods, series)
}

fn label(parts: [Option<&str>; 2], all: &str) -> String {
    let named: Vec<&str> = parts.into_iter().flatten().collect();
    if named.is_empty() {
        all.to_owned()
    } else {
        named.join(" · ")
    }
}

/// A chart's words: its title, the label of a total, and a category's or status's name.
pub struct ChartWords<'a> {
    pub title: &'a str,
    pub all: &'a str,
    pub name: &'a dyn Fn(&str) -> String,
}

/// What every statistics table answers besides JSON.
pub trait Tabular {
    /// RFC 4180 CSV, UTF-8, a header line.
    fn to_csv(&self) -> Result<Vec<u8>, AppError>;
    /// A bar chart (SVG, with its numbers as text), in English.
    fn to_svg(&self) -> String;
}

impl Tabular for StatisticsTable {
    fn to_csv(&self) -> Result<Vec<u8>, AppError> {
        StatisticsTable::to_csv(self)
    }

    fn to_svg(&self) -> String {
        StatisticsTable::to_svg(self)
    }
}

impl Tabular for ReferralStatistics {
    fn to_csv(&self) -> Result<Vec<u8>, AppError> {
        ReferralStatistics::to_csv(self)
    }

    fn to_svg(&self) -> String {
        ReferralStatistics::to_svg(self)
    }
}

/// A bar chart of rows given as (unit name, category or status, period, count).
fn chart_of<'r>(
    w: &ChartWords<'_>,
    rows: impl Iterator<Item = (Option<&'r str>, Option<&'r str>, &'r str, Option<i64>)>,
) -> String {
    let (periods, series) = series_of(rows.map(|(unit, category, period, count)| {
        let category = category.map(w.name);
        (label([unit, category.as_deref()], w.all), period, count)
    }));
    chart::bar_chart(w.title, &periods, &series)
}

impl StatisticsTable {
    /// A bar chart of the table (SVG, with its numbers as text), in English.
    pub fn to_svg(&self) -> String {
        self.to_svg_in(&ChartWords {
            title: "Observations",
            all: "All places",
            name: &str::to_owned,
        })
    }

    /// The same with the page's words.
    pub fn to_svg_in(&self, w: &ChartWords<'_>) -> String {
        chart_of(
            w,
            self.rows.iter().map(|r| {
                (
                    r.place_name.as_deref(),
                    r.category.as_deref(),
                    r.period.as_str(),
                    r.count,
                )
            }),
        )
    }
}

impl ReferralStatistics {
    /// A bar chart of the rows (SVG, with its numbers as text), in English.
    pub fn to_svg(&self) -> String {
        self.to_svg_in(&ChartWords {
            title: "Reports of concern (orosanmälningar)",
            all: "All referrals",
            name: &str::to_owned,
        })
    }

    /// The same with the page's words.
    pub fn to_svg_in(&self, w: &ChartWords<'_>) -> String {
        chart_of(
            w,
            self.rows.iter().map(|r| {
                (
                    r.organization_name.as_deref(),
                    r.status.as_deref(),
                    r.period.as_str(),
                    r.count,
                )
            }),
        )
    }
}

/// The smallest number of days by which at least `q` of the decisions had come
/// (nearest rank), from (days, count) sorted by days.
fn percentile(hist: &[(i64, i64)], q: f64) -> Option<i64> {
    let n: i64 = hist.iter().map(|(_, c)| c).sum();
    if n == 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as i64).max(1);
    let mut seen = 0;
    hist.iter().find_map(|&(d, c)| {
        seen += c;
        (seen >= rank).then_some(d)
    })
}

/// Referral statistics (the API, pages and report).
pub fn referrals(
    conn: &mut DbConnection,
    spec: &Spec,
    cache: &DecisionCache,
) -> Result<ReferralStatistics, AppError> {
    use crate::storage::aggregates::{decision_days_between, referral_counts_between};
    use crate::storage::schema::organizations;
    let all: Vec<(String, String)> = organizations::table
        .filter(organizations::kind.eq("social_services"))
        .order(organizations::id.asc())
        .select((organizations::id, organizations::name))
        .load(conn)?;
    let ids: Vec<String> = all.iter().map(|(id, _)| id.clone()).collect();
    let index: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i))
        .collect();
    let chosen = chosen_units(
        spec,
        &index,
        "unknown_organization",
        "no such receiving organisation; GET /api/v1/organizations lists them (kind social_services)",
    )?;
    let (groups, first_status, first_timing, decided_group) = referral_groups();
    let statuses: Vec<Option<usize>> = if spec.by_category {
        (0..STATUSES.len())
            .map(|s| Some(first_status + s))
            .collect()
    } else {
        vec![None]
    };
    let periods = spec.periods();
    if periods.len() * chosen.len() * statuses.len() > MAX_ROWS {
        return Err(AppError::bad_request(
            "too_many_rows",
            format!("the table would have more than {MAX_ROWS} rows; ask for a shorter range or fewer groups"),
        ));
    }
    // The cache key: the organisations, marked so a place list never matches.
    let key: Vec<String> = std::iter::once("referrals".to_owned())
        .chain(ids.iter().cloned())
        .collect();
    let mut decisions: HashMap<i32, Arc<Decision>> = HashMap::new();
    // Days to the first decision by (organisation, month), from the distribution table.
    let mut days: HashMap<(i32, usize, usize), Vec<(i64, i64)>> = HashMap::new();
    for year in spec.from.year..=spec.to.year {
        let (from, to) = (format!("{year:04}-01"), format!("{year:04}-12"));
        let mut table = YearTable::new(ids.len(), STATUSES.len() * TIMINGS.len());
        for (month, org, status, timing, n) in referral_counts_between(conn, &from, &to)? {
            let m = month_of(&month);
            let s = STATUSES.iter().position(|x| *x == status);
            let t = TIMINGS.iter().position(|x| *x == timing);
            if let (Some(&o), Some(s), Some(t), Some(m)) = (index.get(org.as_str()), s, t, m) {
                table.add(o, s * TIMINGS.len() + t, m, n);
            }
        }
        for (month, org, d, n) in decision_days_between(conn, &from, &to)? {
            if let (Some(&o), Some(m)) = (index.get(org.as_str()), month_of(&month)) {
                days.entry((year, o, m)).or_default().push((d as i64, n));
            }
        }
        let decision = cache.decide_grouped(year, &key, table, &groups);
        decisions.insert(year, decision);
    }
    let mut rows = Vec::new();
    let mut times = Vec::new();
    for (year, period) in periods {
        let Some(d) = decisions.get(&year) else {
            continue;
        };
        for &unit in &chosen {
            let name = |u: Option<usize>| u.map(|u| all[u].0.clone());
            let title = |u: Option<usize>| u.map(|u| all[u].1.clone());
            for &status in &statuses {
                let count = d.get(Cell {
                    place: unit,
                    category: status,
                    period,
                });
                rows.push(ReferralRow {
                    receiving_organization: name(unit),
                    organization_name: title(unit),
                    status: status.map(|s| STATUSES[s - first_status].to_owned()),
                    period: period_label(year, period),
                    count,
                    suppressed: count.is_none(),
                });
            }
            let cell = |category| Cell {
                place: unit,
                category: Some(category),
                period,
            };
            let decided = d.get(cell(decided_group));
            let within = d.get(cell(first_timing + 1));
            // Percentiles only of a published count of decisions: never of fewer than 5.
            let (median, p90) = match decided {
                Some(_) => {
                    let mut hist: Vec<(i64, i64)> = Vec::new();
                    for o in unit.map_or(0..ids.len(), |u| u..u + 1) {
                        for m in period.months() {
                            hist.extend(days.get(&(year, o, m)).into_iter().flatten());
                        }
                    }
                    hist.sort_unstable();
                    (percentile(&hist, 0.5), percentile(&hist, 0.9))
                }
                None => (None, None),
            };
            times.push(FeedbackTimes {
                receiving_organization: name(unit),
                organization_name: title(unit),
                period: period_label(year, period),
                decided,
                median_days: median,
                p90_days: p90,
                share_within_14_days: match (within, decided) {
                    (Some(w), Some(n)) if n > 0 => {
                        Some((w as f64 / n as f64 * 100.0).round() / 100.0)
                    }
                    _ => None,
                },
                suppressed: decided.is_none(),
            });
        }
    }
    Ok(ReferralStatistics {
        rows,
        feedback_times: times,
        suppressed_below: THRESHOLD,
    })
}

/// The month (0-based) of a `YYYY-MM` label.
fn month_of(label: &str) -> Option<usize> {
    match label.get(5..7).and_then(|m| m.parse::<usize>().ok()) {
        Some(m @ 1..=12) => Some(m - 1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::aggregates::{decision_days, timing};

    #[test]
    fn percentiles_are_nearest_rank_over_the_distribution() {
        // Days 1, 2, 2, 3, 30 (five decisions).
        let hist = [(1, 1), (2, 2), (3, 1), (30, 1)];
        assert_eq!(percentile(&hist, 0.5), Some(2));
        assert_eq!(percentile(&hist, 0.9), Some(30));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn a_decision_on_day_14_is_within_14_days_and_day_15_is_not() {
        let day = 86_400 * 1_000_000;
        assert_eq!(
            timing(Some(decision_days(0, 14 * day + day - 1))),
            "within_14"
        );
        assert_eq!(timing(Some(decision_days(0, 15 * day))), "after_14");
        assert_eq!(timing(None), "none");
    }

    #[test]
    fn a_query_names_its_own_dimensions() {
        let now = YearMonth {
            year: 2026,
            month: 12,
        };
        let q = ReferralStatisticsQuery {
            group_by: Some("organization,status,quarter".into()),
            ..Default::default()
        };
        let spec = Spec::parse_referrals(&q, now).expect("valid");
        assert_eq!(
            spec.describe(),
            [
                "from=2026-01",
                "to=2026-12",
                "group_by=organization+status+quarter"
            ]
        );
        let wrong = StatisticsQuery {
            group_by: Some("status".into()),
            ..Default::default()
        };
        assert!(Spec::parse(&wrong, now).is_err());
    }
}
