//! Statistics: nothing under 5 is published, nor any count a reader could compute from
//! the published ones (checked by solving, independently of the service's own check),
//! counts outlive retention, every read is audited, and every role may read them.

use std::ops::Range;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};

use samverkan::records::observations::CATEGORIES;
use samverkan::statistics::suppression::{Cell, Decision, Group, Period, YearTable};

use crate::helpers::{spawn_app, TestApp, DEMO_USERS};

/// Linear equations over unknown month cells, in reduced row echelon form (f64, partial
/// pivoting): a different method from the service's (modular arithmetic), on purpose.
struct Solver {
    rows: Vec<(usize, Vec<f64>)>,
}

impl Solver {
    fn new(vars: usize, equations: &[Vec<f64>]) -> Solver {
        let mut m: Vec<Vec<f64>> = equations.to_vec();
        let mut pivots = Vec::new();
        let mut r = 0;
        for col in 0..vars {
            let Some(best) =
                (r..m.len()).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
            else {
                break;
            };
            if m[best][col].abs() < 1e-9 {
                continue;
            }
            m.swap(r, best);
            let p = m[r][col];
            m[r].iter_mut().for_each(|x| *x /= p);
            for i in 0..m.len() {
                if i != r && m[i][col].abs() > 1e-12 {
                    let f = m[i][col];
                    let (row_r, row_i) = if i < r {
                        let (a, b) = m.split_at_mut(r);
                        (&b[0], &mut a[i])
                    } else {
                        let (a, b) = m.split_at_mut(i);
                        (&a[r], &mut b[0])
                    };
                    for (x, y) in row_i.iter_mut().zip(row_r) {
                        *x -= f * y;
                    }
                }
            }
            pivots.push(col);
            r += 1;
        }
        Solver {
            rows: pivots.into_iter().zip(m).collect(),
        }
    }

    /// Whether the published equations fix `target · x`.
    fn solves(&self, target: &[f64]) -> bool {
        let mut t = target.to_vec();
        for (col, row) in &self.rows {
            let f = t[*col];
            if f.abs() > 1e-12 {
                for (x, y) in t.iter_mut().zip(row) {
                    *x -= f * y;
                }
            }
        }
        t.iter().all(|x| x.abs() < 1e-6)
    }
}

/// The month cells (place, category, month) a published cell adds up.
fn indicator(
    places: usize,
    categories: usize,
    place: Option<usize>,
    category: Option<usize>,
    months: Range<usize>,
) -> Vec<f64> {
    let mut v = vec![0.0; places * categories * 12];
    for p in place.map_or(0..places, |p| p..p + 1) {
        for k in category.map_or(0..categories, |k| k..k + 1) {
            for m in months.clone() {
                v[(p * categories + k) * 12 + m] = 1.0;
            }
        }
    }
    v
}

fn grouped_indicator(
    places: usize,
    categories: usize,
    place: Option<usize>,
    members: &[usize],
    months: Range<usize>,
) -> Vec<f64> {
    let mut v = vec![0.0; places * categories * 12];
    for p in place.map_or(0..places, |p| p..p + 1) {
        for &k in members {
            for m in months.clone() {
                v[(p * categories + k) * 12 + m] = 1.0;
            }
        }
    }
    v
}

fn months_of(period: Period) -> Range<usize> {
    period.months()
}

/// Every cell a reader can see, and every suppressed one: is any of those computable?
fn computable(
    places: usize,
    categories: usize,
    published: &[(Vec<f64>, i64)],
    suppressed: &[Vec<f64>],
) -> usize {
    let equations: Vec<Vec<f64>> = published.iter().map(|(v, _)| v.clone()).collect();
    let solver = Solver::new(places * categories * 12, &equations);
    suppressed.iter().filter(|t| solver.solves(t)).count()
}

fn check_decision(table: &YearTable, counts: &[i64]) -> Result<(), TestCaseError> {
    check_grouped(table, counts, &[])
}

/// Decides with extra category groups and checks what it publishes.
fn check_grouped(table: &YearTable, counts: &[i64], groups: &[Group]) -> Result<(), TestCaseError> {
    let (places, categories) = (table.places(), table.categories());
    let d = Decision::decide_with(table, groups);
    let (mut published, mut suppressed) = (Vec::new(), Vec::new());
    for (cell, value) in d.cells() {
        let members: Vec<usize> = match cell.category {
            None => (0..categories).collect(),
            Some(k) if k < categories => vec![k],
            Some(k) => groups[k - categories].members.clone(),
        };
        let v = grouped_indicator(
            places,
            categories,
            cell.place,
            &members,
            months_of(cell.period),
        );
        let truth: i64 = v
            .iter()
            .zip(counts)
            .map(|(a, c)| if *a > 0.0 { *c } else { 0 })
            .sum();
        match value {
            Some(n) => {
                prop_assert!(n >= 5, "published {n} for {cell:?}");
                prop_assert_eq!(n, truth, "wrong count for {:?}", cell);
                published.push((v, n));
            }
            None => suppressed.push(v),
        }
    }
    prop_assert_eq!(computable(places, categories, &published, &suppressed), 0);
    Ok(())
}

fn small_counts() -> impl Strategy<Value = i64> {
    prop_oneof![4 => Just(0i64), 3 => 1i64..5, 2 => 5i64..12, 1 => 12i64..60]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// For random tables, no suppressed cell can be solved from everything published.
    #[test]
    fn no_suppressed_count_can_be_solved_from_the_published_ones(
        places in 1usize..4,
        categories in 1usize..4,
        seed in any::<u64>(),
    ) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let runner_counts: Vec<i64> = (0..places * categories * 12)
            .map(|_| {
                let r: u32 = rng.gen_range(0..10);
                match r {
                    0..=3 => 0,
                    4..=6 => rng.gen_range(1..5),
                    7..=8 => rng.gen_range(5..12),
                    _ => rng.gen_range(12..60),
                }
            })
            .collect();
        let mut table = YearTable::new(places, categories);
        for p in 0..places {
            for k in 0..categories {
                for m in 0..12 {
                    table.add(p, k, m, runner_counts[(p * categories + k) * 12 + m]);
                }
            }
        }
        check_decision(&table, &runner_counts)?;
    }

    /// The same with overlapping groups of categories (statuses × timings, as referrals).
    #[test]
    fn no_suppressed_count_can_be_solved_when_groups_of_categories_are_published(
        places in 1usize..3,
        counts in proptest::collection::vec(small_counts(), 2 * 6 * 12),
    ) {
        // Two statuses × three timings; groups: each status, each timing, "decided".
        let groups: Vec<Group> = (0..2)
            .map(|s| Group { members: vec![s * 3, s * 3 + 1, s * 3 + 2], family: 1, priority: 0 })
            .chain((0..3).map(|t| Group { members: vec![t, 3 + t], family: 2, priority: 0 }))
            .chain(std::iter::once(Group { members: vec![1, 2, 4, 5], family: 3, priority: 1 }))
            .collect();
        let mut table = YearTable::new(places, 6);
        for p in 0..places {
            for k in 0..6 {
                for m in 0..12 {
                    table.add(p, k, m, counts[(p * 6 + k) * 12 + m]);
                }
            }
        }
        check_grouped(&table, &counts[..places * 6 * 12], &groups)?;
    }

    #[test]
    fn no_suppressed_count_can_be_solved_in_a_dense_table_with_rare_small_cells(
        counts in proptest::collection::vec(small_counts(), 2 * 3 * 12),
    ) {
        let mut table = YearTable::new(2, 3);
        for p in 0..2 {
            for k in 0..3 {
                for m in 0..12 {
                    table.add(p, k, m, counts[(p * 3 + k) * 12 + m]);
                }
            }
        }
        check_decision(&table, &counts)?;
    }
}

async fn stats(app: &TestApp, token: &str, query: &str) -> Value {
    let r = app
        .get(&format!("/api/v1/statistics/observations?{query}"), token)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
    assert_eq!(r.json["suppressed_below"], 5, "{}", r.text);
    r.json
}

async fn place_ids(app: &TestApp, token: &str) -> Vec<String> {
    let r = app.get("/api/v1/places", token).await;
    let mut ids: Vec<String> = r
        .json
        .as_array()
        .expect("places")
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// Files `n` observations at a place, of a category, in a month of a year.
async fn file(
    app: &TestApp,
    token: &str,
    place: &str,
    category: &str,
    year: i32,
    month: usize,
    n: i64,
) {
    for i in 0..n {
        let r = app
            .post(
                "/api/v1/observations",
                token,
                &json!({"place": place, "category": category,
                        "observed_at": format!("{year}-{:02}-{:02}T20:00:00Z", month + 1, 1 + i % 27)}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
}

fn period_months(label: &str) -> Range<usize> {
    match label.split_once('-') {
        None => 0..12,
        Some((_, q)) if q.starts_with('Q') => {
            let q: usize = q[1..].parse().expect("quarter");
            3 * (q - 1)..3 * q
        }
        Some((_, m)) => {
            let m: usize = m.parse().expect("month");
            m - 1..m
        }
    }
}

#[tokio::test]
async fn what_the_api_publishes_for_a_random_year_never_gives_a_small_count_away() {
    let app = spawn_app().await;
    let police = app.token("polis1").await;
    let places = place_ids(&app, &police).await;
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (pn, cn) = (places.len(), CATEGORIES.len());
    // Three categories in use, the rest empty, as at a real place.
    let used: Vec<usize> = (0..3).map(|_| rng.gen_range(0..cn)).collect();
    let mut truth = vec![0i64; pn * cn * 12];
    for p in 0..pn {
        for &k in &used {
            for m in 0..12 {
                let n = match rng.gen_range(0..10) {
                    0..=4 => 0,
                    5..=7 => rng.gen_range(1..5),
                    _ => rng.gen_range(5..9),
                };
                if truth[(p * cn + k) * 12 + m] == 0 && n > 0 {
                    truth[(p * cn + k) * 12 + m] = n;
                    file(&app, &police, &places[p], CATEGORIES[k], 2025, m, n).await;
                }
            }
        }
    }
    let (mut published, mut suppressed) = (Vec::new(), Vec::new());
    for period in ["month", "quarter", "year"] {
        for groups in ["", "place,", "category,", "place,category,"] {
            let t = stats(
                &app,
                &police,
                &format!("from=2025-01&to=2025-12&group_by={groups}{period}"),
            )
            .await;
            for row in t["rows"].as_array().expect("rows") {
                let place = row["place"]
                    .as_str()
                    .map(|p| places.iter().position(|x| x == p).expect("known place"));
                let category = row["category"].as_str().map(|c| {
                    CATEGORIES
                        .iter()
                        .position(|x| x == &c)
                        .expect("known category")
                });
                let months = period_months(row["period"].as_str().expect("period"));
                assert_eq!(months.start / 12, 0, "{row}");
                let v = indicator(pn, cn, place, category, months);
                let real: i64 = v
                    .iter()
                    .zip(&truth)
                    .map(|(a, c)| if *a > 0.0 { *c } else { 0 })
                    .sum();
                match row["count"].as_i64() {
                    Some(n) => {
                        assert!(n >= 5, "seed {seed}: published {n}: {row}");
                        assert_eq!(n, real, "seed {seed}: {row}");
                        assert_eq!(row["suppressed"], false, "{row}");
                        published.push((v, n));
                    }
                    None => {
                        assert_eq!(row["suppressed"], true, "{row}");
                        assert!(row["count"].is_null(), "{row}");
                        suppressed.push(v);
                    }
                }
            }
        }
    }
    assert!(!suppressed.is_empty(), "seed {seed}: nothing suppressed");
    // Not everything either: the year's total, at least, is a number.
    assert!(
        published.len() >= 3,
        "seed {seed}: only {} published",
        published.len()
    );
    assert_eq!(
        computable(pn, cn, &published, &suppressed),
        0,
        "seed {seed}: a suppressed count can be computed from the published ones"
    );
}

#[tokio::test]
async fn counts_outlive_retention_and_each_read_is_audited() {
    let app = spawn_app().await;
    let (police, auditor) = (app.token("polis1").await, app.token("revisor1").await);
    file(&app, &police, "sergels-torg", "drug_use", 2024, 4, 6).await;
    file(&app, &police, "hasselby-torg", "drug_use", 2024, 4, 7).await;
    let query = "from=2024-01&to=2024-12&group_by=year";
    let before = stats(&app, &police, query).await;
    assert_eq!(
        before["rows"],
        json!([{"period": "2024", "count": 13, "suppressed": false}])
    );
    let by_place = stats(
        &app,
        &police,
        "from=2024-05&to=2024-05&group_by=place,category",
    )
    .await;

    // Every observation filed in 2024 is past its retention period: erase them.
    let mut c = app.connect();
    use diesel::prelude::*;
    use samverkan::storage::schema::observations;
    let ids: Vec<String> = observations::table
        .filter(observations::observed_at.lt(1_735_689_600_000_000))
        .select(observations::id)
        .load(&mut c)
        .expect("ids");
    assert_eq!(ids.len(), 13);
    diesel::update(observations::table.filter(observations::id.eq_any(&ids)))
        .set(observations::created_at.eq(observations::created_at - 400 * 86_400 * 1_000_000))
        .execute(&mut c)
        .expect("backdate");
    let (ok, out) = app.cli(&["retention", "run"]);
    assert!(ok, "{out}");
    assert!(out.contains("observation: erased 13"), "{out}");
    let left: i64 = observations::table
        .filter(observations::id.eq_any(&ids))
        .count()
        .get_result(&mut c)
        .expect("count");
    assert_eq!(left, 0);

    assert_eq!(stats(&app, &police, query).await, before);
    assert_eq!(
        stats(
            &app,
            &police,
            "from=2024-05&to=2024-05&group_by=place,category"
        )
        .await,
        by_place
    );

    let r = app
        .get(
            "/api/v1/audit?action=statistics_read&actor=polis1",
            &auditor,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.json["items"].as_array().expect("items");
    assert_eq!(items.len(), 4, "{}", r.text);
    assert!(
        items.iter().any(|e| e["parts"]
            == json!([
                "from=2024-05",
                "to=2024-05",
                "group_by=place+category+month"
            ])),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn every_role_reads_statistics_and_the_mean_over_places_stands_beside_each_place() {
    let app = spawn_app().await;
    let police = app.token("polis1").await;
    file(&app, &police, "sergels-torg", "drug_sale", 2025, 2, 9).await;
    file(&app, &police, "hasselby-torg", "drug_sale", 2025, 2, 5).await;
    for user in DEMO_USERS {
        let token = app.token(user).await;
        let t = stats(&app, &token, "from=2025-03&to=2025-03&group_by=place").await;
        let rows = t["rows"].as_array().expect("rows");
        let sergel = rows
            .iter()
            .find(|r| r["place"] == "sergels-torg")
            .expect("Sergels torg");
        assert_eq!(sergel["count"], 9, "{user}: {t}");
        assert_eq!(sergel["place_name"], "Sergels torg");
        assert_eq!(sergel["mean_all_places"], 7.0, "{user}: {t}");
    }
    let r = app.get("/api/v1/statistics/observations", "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn statistics_as_csv_keep_swedish_place_names() {
    let app = spawn_app().await;
    let police = app.token("polis1").await;
    file(&app, &police, "hasselby-torg", "violence", 2025, 0, 8).await;
    file(&app, &police, "sergels-torg", "violence", 2025, 0, 6).await;
    let r = app
        .send(
            app.client
                .get(app.url("/api/v1/statistics/observations?from=2025-01&to=2025-03&group_by=place,quarter"))
                .bearer_auth(&police)
                .header("Accept", "text/csv"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut reader = csv::Reader::from_reader(r.text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "place",
            "place_name",
            "category",
            "period",
            "count",
            "suppressed",
            "mean_all_places"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let h = rows
        .iter()
        .find(|r| &r[0] == "hasselby-torg")
        .expect("Hässelby");
    assert_eq!(&h[1], "Hässelby torg");
    assert_eq!(
        (&h[3], &h[4], &h[5], &h[6]),
        ("2025-Q1", "8", "false", "7.0")
    );
}

#[tokio::test]
async fn statistics_refuse_windows_that_cut_a_bucket_and_other_bad_queries() {
    let app = spawn_app().await;
    let token = app.token("vakt1").await;
    for (query, code) in [
        ("group_by=quarter&from=2025-02&to=2025-06", "invalid_range"),
        ("group_by=year&from=2025-01&to=2025-11", "invalid_range"),
        ("from=2025-06&to=2025-01", "invalid_range"),
        ("from=2010-01&to=2025-12", "invalid_range"),
        ("from=2025-13", "invalid_month"),
        ("from=25-01", "invalid_month"),
        ("group_by=month,year", "invalid_group_by"),
        ("group_by=reporter", "invalid_group_by"),
        ("place=nowhere", "unknown_place"),
    ] {
        let r = app
            .get(&format!("/api/v1/statistics/observations?{query}"), &token)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
        assert_eq!(r.json["error"], code, "{query}: {}", r.text);
    }
    let r = app
        .get("/api/v1/statistics/observations?window=2025-01-01", &token)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

#[test]
fn a_cell_outside_the_table_is_never_published() {
    let d = Decision::decide(&YearTable::new(1, 1));
    assert_eq!(
        d.get(Cell {
            place: Some(3),
            category: None,
            period: Period::Year
        }),
        None
    );
}

/// The month cells of the referral cube a published referral number adds up: statuses
/// × timings (none, within 14 days, later), by organisation and month.
fn referral_indicator(
    orgs: usize,
    org: Option<usize>,
    members: &[usize],
    months: Range<usize>,
) -> Vec<f64> {
    let cats = 5 * 3;
    let mut v = vec![0.0; orgs * cats * 12];
    for o in org.map_or(0..orgs, |o| o..o + 1) {
        for &k in members {
            for m in months.clone() {
                v[(o * cats + k) * 12 + m] = 1.0;
            }
        }
    }
    v
}

#[tokio::test]
async fn referral_statistics_publish_the_status_mix_and_feedback_times_without_small_counts() {
    let app = spawn_app().await;
    let (police, social) = (app.token("polis1").await, app.token("soc1").await);
    let orgs: Vec<String> = {
        let r = app.get("/api/v1/organizations", &police).await;
        let mut ids: Vec<String> = r
            .json
            .as_array()
            .expect("organizations")
            .iter()
            .filter(|o| o["kind"] == "social_services")
            .map(|o| o["id"].as_str().expect("id").to_owned())
            .collect();
        ids.sort();
        ids
    };
    // Fifteen referrals: six get "not_opened", two "investigation_opened", seven wait.
    for i in 0..15 {
        let r = app
            .post(
                "/api/v1/referrals",
                &police,
                &json!({
                "receiving_organization": "socialtjansten-norrmalm",
                "child": {"alias": format!("Barn {i}")}, "concern": "Seen at the scene at night."}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.json["id"].as_str().expect("id").to_owned();
        let status = match i {
            0..6 => "not_opened",
            6..8 => "investigation_opened",
            _ => continue,
        };
        let f = app
            .post(
                &format!("/api/v1/referrals/{id}/feedback"),
                &social,
                &json!({"status": status}),
            )
            .await;
        assert!(f.status.is_success(), "{}", f.text);
    }
    let year = samverkan::fields::stockholm_month(samverkan::storage::now_micros())[..4].to_owned();
    let statuses = [
        "pending",
        "investigation_opened",
        "not_opened",
        "already_ongoing",
        "withheld",
    ];
    let (mut published, mut suppressed) = (Vec::new(), Vec::new());
    let mut seen_times = 0;
    for period in ["month", "quarter", "year"] {
        for groups in ["", "organization,", "status,", "organization,status,"] {
            let r = app
                .get(&format!("/api/v1/statistics/referrals?from={year}-01&to={year}-12&group_by={groups}{period}"), &social)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            assert_eq!(r.json["suppressed_below"], 5);
            let org_of = |row: &Value| {
                row["receiving_organization"].as_str().map(|o| {
                    orgs.iter()
                        .position(|x| x == o)
                        .expect("known organisation")
                })
            };
            for row in r.json["rows"].as_array().expect("rows") {
                let members: Vec<usize> = match row["status"].as_str() {
                    Some(s) => {
                        let s = statuses.iter().position(|x| *x == s).expect("known status");
                        (0..3).map(|t| s * 3 + t).collect()
                    }
                    None => (0..15).collect(),
                };
                let v = referral_indicator(
                    orgs.len(),
                    org_of(row),
                    &members,
                    period_months(row["period"].as_str().expect("period")),
                );
                match row["count"].as_i64() {
                    Some(n) => {
                        assert!(n >= 5, "{row}");
                        published.push((v, n));
                    }
                    None => suppressed.push(v),
                }
            }
            for t in r.json["feedback_times"].as_array().expect("feedback times") {
                let months = period_months(t["period"].as_str().expect("period"));
                let decided: Vec<usize> = (0..5).flat_map(|s| [s * 3 + 1, s * 3 + 2]).collect();
                let v = referral_indicator(orgs.len(), org_of(t), &decided, months.clone());
                match t["decided"].as_i64() {
                    Some(n) => {
                        assert!(n >= 5, "{t}");
                        // Everything here was filed and decided today.
                        assert_eq!(
                            (&t["median_days"], &t["p90_days"]),
                            (&json!(0), &json!(0)),
                            "{t}"
                        );
                        published.push((v, n));
                        seen_times += 1;
                        if let Some(share) = t["share_within_14_days"].as_f64() {
                            assert_eq!(share, 1.0, "{t}");
                            let within: Vec<usize> = (0..5).map(|s| s * 3 + 1).collect();
                            published.push((
                                referral_indicator(orgs.len(), org_of(t), &within, months),
                                n,
                            ));
                        }
                    }
                    None => {
                        assert!(t["median_days"].is_null() && t["p90_days"].is_null(), "{t}");
                        assert_eq!(t["suppressed"], true);
                        suppressed.push(v);
                    }
                }
            }
        }
    }
    assert!(seen_times > 0, "no feedback times published");
    assert!(!suppressed.is_empty());
    assert_eq!(computable(orgs.len(), 15, &published, &suppressed), 0);

    // By organisation and status as CSV, and the read is audited.
    let r = app
        .send(
            app.client
                .get(app.url(&format!("/api/v1/statistics/referrals?from={year}-01&to={year}-12&group_by=organization,status,year")))
                .bearer_auth(&social)
                .header("Accept", "text/csv"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut reader = csv::Reader::from_reader(r.text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let not_opened = rows
        .iter()
        .find(|r| &r[0] == "socialtjansten-norrmalm" && &r[2] == "not_opened")
        .expect("row");
    assert_eq!(&not_opened[1], "Socialtjänsten Norrmalm");
    assert!(
        not_opened[4].is_empty() || not_opened[4].parse::<i64>().expect("count") >= 6,
        "{:?}",
        not_opened
    );
    let auditor = app.token("revisor1").await;
    let a = app
        .get("/api/v1/audit?action=statistics_read&actor=soc1", &auditor)
        .await;
    assert_eq!(
        a.json["items"].as_array().map(Vec::len),
        Some(13),
        "{}",
        a.text
    );
}

#[tokio::test]
async fn records_filed_before_the_statistics_existed_are_counted_once_at_start() {
    use diesel::connection::SimpleConnection;
    let app = spawn_app().await;
    let (police, social) = (app.token("polis1").await, app.token("soc1").await);
    file(&app, &police, "sergels-torg", "disorder", 2025, 5, 6).await;
    let query = "from=2025-06&to=2025-06&group_by=category";
    let before = stats(&app, &police, query).await;
    let referrals_before = app
        .get("/api/v1/statistics/referrals?group_by=status,year", &social)
        .await;
    // As a database from before the statistics: no counts, and the migrations' markers.
    app.connect()
        .batch_execute(
            "DELETE FROM observation_counts; DELETE FROM referral_counts; DELETE FROM referral_decision_days;
             INSERT INTO observation_counts (month, place_id, category, count) VALUES ('backfill', '', '', 0);
             INSERT INTO referral_counts (month, receiving_org_id, status, timing, count) VALUES ('backfill', '', '', '', 0);",
        )
        .expect("forget the counts");
    // Two instances start on it together: each record is counted once.
    let url = app.db_url.clone();
    let (a, b) = tokio::join!(
        tokio::task::spawn_blocking({
            let url = url.clone();
            move || crate::helpers::start(crate::helpers::test_settings(url))
        }),
        tokio::task::spawn_blocking(move || crate::helpers::start(crate::helpers::test_settings(
            url
        )))
    );
    let (a, b) = (a.expect("first"), b.expect("second"));
    for instance in [&a, &b] {
        let token = instance.token("polis1").await;
        let after = stats(instance, &token, query).await;
        assert_eq!(after, before);
        let disorder = after["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["category"] == "disorder")
            .cloned();
        assert_eq!(disorder.map(|r| r["count"].clone()), Some(json!(6)));
        let soc = instance.token("soc1").await;
        let r = instance
            .get("/api/v1/statistics/referrals?group_by=status,year", &soc)
            .await;
        assert_eq!(r.json, referrals_before.json);
    }
}

#[tokio::test]
async fn a_chart_is_svg_with_its_numbers_as_text_and_no_external_resource() {
    let app = spawn_app().await;
    let police = app.token("polis1").await;
    file(&app, &police, "hasselby-torg", "threat", 2025, 3, 7).await;
    file(&app, &police, "sergels-torg", "threat", 2025, 3, 9).await;
    let query = "from=2025-04&to=2025-04&group_by=place";
    let by_path = app
        .get(
            &format!("/api/v1/statistics/observations.svg?{query}"),
            &police,
        )
        .await;
    assert_eq!(by_path.status, StatusCode::OK, "{}", by_path.text);
    let by_accept = app
        .send(
            app.client
                .get(app.url(&format!("/api/v1/statistics/observations?{query}")))
                .bearer_auth(&police)
                .header("Accept", "image/svg+xml"),
        )
        .await;
    for r in [&by_path, &by_accept] {
        assert_eq!(
            r.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("image/svg+xml; charset=utf-8")
        );
        assert!(r.text.starts_with("<svg"), "{}", r.text);
        assert!(
            r.text.contains("2025-04: Hässelby torg 7, Sergels torg 9."),
            "{}",
            r.text
        );
        assert!(
            !r.text.contains("href") && !r.text.contains("<script"),
            "{}",
            r.text
        );
    }
    let r = app
        .get(
            "/api/v1/statistics/referrals.svg?group_by=status,year",
            &police,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.text.contains("<desc id=\"d\">Reports of concern"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn the_forum_report_is_one_offline_html_file_from_the_same_queries() {
    let app = spawn_app().await;
    let police = app.token("polis1").await;
    file(&app, &police, "hasselby-torg", "drug_sale", 2025, 1, 7).await;
    file(&app, &police, "sergels-torg", "drug_sale", 2025, 1, 12).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("report.html");
    let out_s = out.to_str().expect("utf-8 path");
    let (ok, text) = app.cli(&[
        "report", "--from", "2025-01", "--to", "2025-06", "--period", "quarter", "--out", out_s,
    ]);
    assert!(ok, "{text}");
    let html = std::fs::read_to_string(&out).expect("the report");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains(
            "<td>2025-Q1</td><td>Hässelby torg</td><td class=\"n\">7</td><td class=\"n\">9.5</td>"
        ),
        "{html}"
    );
    assert_eq!(html.matches("<svg").count(), 2);
    for external in ["<script", "<link", " src=", "href=", "url(", "@import"] {
        assert!(!html.contains(external), "{external} in the report");
    }
    // The same numbers as the API gives.
    let api = stats(
        &app,
        &police,
        "from=2025-01&to=2025-06&group_by=place,quarter",
    )
    .await;
    let sergel = api["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["place"] == "sergels-torg" && r["period"] == "2025-Q1")
        .expect("row")
        .clone();
    assert_eq!(sergel["count"], 12);
    assert!(html.contains("<td>2025-Q1</td><td>Sergels torg</td><td class=\"n\">12</td>"));
    // A window that cuts a quarter is refused, and nothing is written.
    let other = dir.path().join("other.html");
    let (ok, text) = app.cli(&[
        "report",
        "--from",
        "2025-02",
        "--to",
        "2025-06",
        "--period",
        "quarter",
        "--out",
        other.to_str().expect("path"),
    ]);
    assert!(!ok && text.contains("quarter"), "{text}");
    assert!(!other.exists());
    // Audited as statistics reads by the command line.
    let auditor = app.token("revisor1").await;
    let r = app
        .get("/api/v1/audit?action=statistics_read", &auditor)
        .await;
    let cli: Vec<&Value> = r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["client"] == "cli")
        .collect();
    assert_eq!(cli.len(), 2, "{}", r.text);
}
