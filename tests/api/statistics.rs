//! Statistics: nothing under 5 is published, nor any count a reader could compute from
//! the published ones (checked by solving, independently of the service's own check),
//! counts outlive retention, every read is audited, and every role may read them.

use std::ops::Range;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};

use samverkan::records::observations::CATEGORIES;
use samverkan::statistics::suppression::{Cell, Decision, Period, YearTable};

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
    let (places, categories) = (table.places(), table.categories());
    let d = Decision::decide(table);
    let (mut published, mut suppressed) = (Vec::new(), Vec::new());
    for (cell, value) in d.cells() {
        let v = indicator(
            places,
            categories,
            cell.place,
            cell.category,
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
