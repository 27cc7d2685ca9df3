//! The statistics page, for every role the policy lets read them: observations per
//! place (and category) and orosanmälningar per status with the time to feedback, as
//! tables and charts, from the same queries as the API (so the same suppression and the
//! same audit).

use actix_web::{web, HttpResponse};
use askama::Template;

use super::session::{WebError, WebSession};
use super::{render, Frame};
use crate::api::state::AppState;
use crate::statistics::{
    ChartWords, ReferralStatistics, ReferralStatisticsQuery, StatisticsQuery, StatisticsTable,
};

#[derive(Template)]
#[template(path = "statistics.html")]
struct StatisticsPage {
    f: Frame,
    from: String,
    to: String,
    period: String,
    by_category: bool,
    /// The form's query string, for the download links.
    params: String,
    observations: StatisticsTable,
    observation_chart: String,
    referrals: ReferralStatistics,
    referral_chart: String,
}

impl StatisticsPage {
    fn count(&self, c: &Option<i64>) -> String {
        c.map(|n| n.to_string())
            .unwrap_or_else(|| self.f.t.get("statistics.suppressed").to_owned())
    }

    fn mean(&self, m: &Option<Option<f64>>) -> String {
        m.flatten().map(|m| format!("{m:.1}")).unwrap_or_default()
    }

    fn share(&self, s: &Option<f64>) -> String {
        s.map(|s| format!("{:.0} %", s * 100.0)).unwrap_or_default()
    }

    fn days(&self, d: &Option<i64>) -> String {
        d.map(|d| d.to_string()).unwrap_or_default()
    }
}

#[derive(serde::Deserialize, Default)]
pub struct Form {
    from: Option<String>,
    to: Option<String>,
    period: Option<String>,
    by_category: Option<String>,
}

fn filled(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// What the form asks for, as the two API queries (and the form's own values).
struct Asked {
    from: String,
    to: String,
    period: &'static str,
    by_category: bool,
    observations: StatisticsQuery,
    referrals: ReferralStatisticsQuery,
    /// The form's query string, for the download links.
    params: String,
}

fn asked(q: &Form) -> Asked {
    let period = match filled(&q.period).as_deref() {
        Some("month") => "month",
        Some("year") => "year",
        _ => "quarter",
    };
    let by_category = q.by_category.is_some();
    let now = crate::statistics::this_month();
    let (from, to) = (
        filled(&q.from).unwrap_or_else(|| format!("{:04}-01", now.year)),
        filled(&q.to).unwrap_or_else(|| format!("{:04}-12", now.year)),
    );
    let group = if by_category {
        format!("place,category,{period}")
    } else {
        format!("place,{period}")
    };
    let enc = super::observations::urlencode;
    Asked {
        observations: StatisticsQuery {
            from: Some(from.clone()),
            to: Some(to.clone()),
            place: None,
            group_by: Some(group),
        },
        referrals: ReferralStatisticsQuery {
            from: Some(from.clone()),
            to: Some(to.clone()),
            organization: None,
            group_by: Some(format!("status,{period}")),
        },
        params: format!(
            "from={}&to={}&period={period}{}",
            enc(&from),
            enc(&to),
            if by_category { "&by_category=1" } else { "" }
        ),
        from,
        to,
        period,
        by_category,
    }
}

/// `GET /statistics`.
pub async fn show(
    state: web::Data<AppState>,
    s: WebSession,
    q: web::Query<Form>,
) -> Result<HttpResponse, WebError> {
    let (f, p) = Frame::of(&state, &s, "statistics").await?;
    let a = asked(&q);
    let observations = crate::api::statistics::observation_table(&state, &p, &a.observations)
        .await
        .map_err(|e| s.fail(e))?;
    let referrals = crate::api::statistics::referral_table(&state, &p, &a.referrals)
        .await
        .map_err(|e| s.fail(e))?;
    let t = f.t;
    let observation_chart = observations.to_svg_in(&ChartWords {
        title: t.get("statistics.observations"),
        all: t.get("statistics.all_places"),
        name: &|c| t.name("category", c).to_owned(),
    });
    let referral_chart = referrals.to_svg_in(&ChartWords {
        title: t.get("statistics.referrals"),
        all: t.get("statistics.all_referrals"),
        name: &|s| t.name("status", s).to_owned(),
    });
    let page = StatisticsPage {
        from: a.from,
        to: a.to,
        period: a.period.to_owned(),
        by_category: a.by_category,
        params: a.params,
        observation_chart,
        referral_chart,
        observations,
        referrals,
        f,
    };
    Ok(s.page(render(&page).map_err(|e| s.fail(e))?))
}

/// `GET /statistics/{observations|referrals}.csv`: the page's tables to download, from
/// the same queries (and so the same suppression and audit).
pub async fn csv(
    state: web::Data<AppState>,
    s: WebSession,
    kind: web::Path<String>,
    q: web::Query<Form>,
) -> Result<HttpResponse, WebError> {
    let p = s.principal(&state).await?;
    let a = asked(&q);
    let body = match kind.as_str() {
        "observations.csv" => {
            crate::api::statistics::observation_table(&state, &p, &a.observations)
                .await
                .and_then(|t| t.to_csv())
        }
        "referrals.csv" => crate::api::statistics::referral_table(&state, &p, &a.referrals)
            .await
            .and_then(|t| t.to_csv()),
        _ => Err(crate::error::AppError::NotFound),
    }
    .map_err(|e| s.fail(e))?;
    let name = format!("attachment; filename=\"samverkan-{}\"", kind.as_str());
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((actix_web::http::header::CONTENT_DISPOSITION, name))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(body))
}
