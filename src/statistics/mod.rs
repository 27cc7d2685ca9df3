//! Statistics (uppföljning): counts over fixed buckets — whole months, quarters or
//! years, whole places — read from aggregates kept when records are filed, so they
//! outlive retention and cost no scan. What may be published is decided per calendar
//! year by [`suppression`]; every query reads from that one decision.

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

/// A validated statistics query.
#[derive(Debug, Clone)]
pub struct Spec {
    pub from: YearMonth,
    pub to: YearMonth,
    pub place: Option<String>,
    pub by_place: bool,
    pub by_category: bool,
    pub period: Granularity,
}

impl Spec {
    /// Validates a query once, at the edge; `now` is this month.
    pub fn parse(q: &StatisticsQuery, now: YearMonth) -> Result<Spec, AppError> {
        let (mut by_place, mut by_category, mut period) = (false, false, None);
        for g in q.group_by.as_deref().unwrap_or("").split(',') {
            let g = g.trim();
            let p = match g {
                "" => continue,
                "place" => {
                    by_place = true;
                    continue;
                }
                "category" => {
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
                            "group_by takes place, category and one of month, quarter, year; not `{other}`"
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
        let to = match &q.to {
            Some(s) => YearMonth::parse("to", s)?,
            None => YearMonth {
                year: now.year,
                month: 12,
            },
        };
        let from = match &q.from {
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
        let place = q
            .place
            .as_deref()
            .map(|p| crate::fields::slug("place", p))
            .transpose()?;
        Ok(Spec {
            from,
            to,
            by_place: by_place || place.is_some(),
            place,
            by_category,
            period,
        })
    }

    /// What the query asked for, as the audit entry records it.
    pub fn describe(&self) -> Vec<String> {
        let mut groups = Vec::new();
        if self.by_place {
            groups.push("place");
        }
        if self.by_category {
            groups.push("category");
        }
        groups.push(self.period.as_str());
        let mut out = vec![
            format!("from={}", self.from.label()),
            format!("to={}", self.to.label()),
            format!("group_by={}", groups.join("+")),
        ];
        if let Some(p) = &self.place {
            out.push(format!("place={p}"));
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
    years: Mutex<HashMap<i32, Decided>>,
}

/// A year's decision with what it was decided on: the places and the counts.
type Decided = (Vec<String>, YearTable, Arc<Decision>);

impl DecisionCache {
    fn decide(&self, year: i32, places: &[String], table: YearTable) -> Arc<Decision> {
        if let Ok(years) = self.years.lock() {
            if let Some((p, t, d)) = years.get(&year) {
                if p == places && *t == table {
                    return d.clone();
                }
            }
        }
        let d = Arc::new(Decision::decide(&table));
        if let Ok(mut years) = self.years.lock() {
            // Bounded: a query spans at most ten years, and old years rarely change.
            if years.len() > 64 {
                years.clear();
            }
            years.insert(year, (places.to_vec(), table, d.clone()));
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
    let chosen: Vec<Option<usize>> = match &spec.place {
        Some(p) => match place_index.get(p.as_str()) {
            Some(&i) => vec![Some(i)],
            None => {
                return Err(AppError::bad_request(
                    "unknown_place",
                    "no such place; GET /api/v1/places lists them",
                ))
            }
        },
        None if spec.by_place => (0..ids.len()).map(Some).collect(),
        None => vec![None],
    };
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
