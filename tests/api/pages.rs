//! The web pages over real HTTP: sign-in and the session cookie, CSRF, the same parts
//! as the API in the HTML (the role × part matrix through the pages), the same 404 for
//! a hidden record as for a missing one, sessions that end, headers, and audit entries
//! marked `web`. (Clicking through in a real browser: `browser.rs`.)

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_with, Resp, TestApp, DEMO_USERS, PASSWORD};
use crate::matrix::{all_markers, build_world, expected};

/// Posts the sign-in form as a browser does: the form's pre-session cookie and its token.
async fn sign_in_form(app: &TestApp, user: &str, password: &str, origin: Option<&str>) -> Resp {
    let form = app.send(app.client.get(app.url("/login"))).await;
    let set = form.headers["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set.split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("samverkan_login="), "{set}");
    let at = form
        .text
        .find("name=\"csrf\" value=\"")
        .expect("the form's token");
    let csrf = form.text[at + 19..].split('"').next().unwrap().to_owned();
    let mut req = app
        .client
        .post(app.url("/login"))
        .header("cookie", cookie)
        .form(&[
            ("username", user),
            ("password", password),
            ("csrf", csrf.as_str()),
        ]);
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    app.send(req).await
}

/// The session cookie a response sets, if any.
fn session_cookie(r: &Resp) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("samverkan=") || c.starts_with("__Host-samverkan="))
}

/// A signed-in browser: its session cookie.
struct Browser<'a> {
    app: &'a TestApp,
    cookie: String,
}

impl<'a> Browser<'a> {
    async fn sign_in(app: &'a TestApp, user: &str) -> Browser<'a> {
        let r = sign_in_form(app, user, PASSWORD, None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{user}: {}", r.text);
        let set = session_cookie(&r).expect("a session cookie");
        let cookie = set.split(';').next().unwrap().to_owned();
        Browser { app, cookie }
    }

    async fn get(&self, path: &str) -> Resp {
        self.app
            .send(
                self.app
                    .client
                    .get(self.app.url(path))
                    .header("cookie", &self.cookie),
            )
            .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.app
            .send(
                self.app
                    .client
                    .post(self.app.url(path))
                    .header("cookie", &self.cookie)
                    .form(form),
            )
            .await
    }

    /// The CSRF token in the forms of `path`.
    async fn csrf(&self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text);
        let at = page
            .text
            .find("name=\"csrf\" value=\"")
            .expect("a form with a csrf field");
        page.text[at + 19..].split('"').next().unwrap().to_owned()
    }
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_and_leads_to_the_work_of_the_role() {
    let app = spawn_app().await;
    for (user, home) in [
        ("vakt1", "/situation-reports"),
        ("polis1", "/situation-reports"),
        ("analytiker1", "/observations"),
        ("soc1", "/referrals"),
        ("falt1", "/situation-reports"),
        ("samordnare1", "/situation-reports"),
        ("revisor1", "/audit"),
        ("admin1", "/admin"),
    ] {
        let r = sign_in_form(&app, user, PASSWORD, None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let set = session_cookie(&r).expect("a session cookie");
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(flag), "{set}");
        }
        // Plain HTTP on a loopback address: no Secure, so no __Host- prefix either.
        assert!(
            set.starts_with("samverkan=") && !set.contains("Secure"),
            "{set}"
        );
        let b = Browser::sign_in(&app, user).await;
        let r = b.get("/").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.headers["location"], home, "{user}");
        let page = b.get(home).await;
        assert_eq!(page.status, StatusCode::OK, "{user} {home}");
        assert_eq!(page.headers["cache-control"], "no-store");
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert_eq!(page.headers["referrer-policy"], "no-referrer");
    }
    // A wrong password: the form again, with the reason, and no cookie.
    let r = sign_in_form(&app, "vakt1", "wrong-password-123", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text.contains("role=\"alert\"") && session_cookie(&r).is_none());
    // A sign-in form posted without its token (from another site, say) signs nobody in.
    let r = app
        .send(
            app.client
                .post(app.url("/login"))
                .form(&[("username", "vakt1"), ("password", PASSWORD)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(session_cookie(&r).is_none());
    // Over TLS (as configured), the cookie is __Host- and Secure.
    let tls = spawn_with(|s| s.web.secure_cookies = Some(true)).await;
    let r = sign_in_form(&tls, "vakt1", PASSWORD, None).await;
    let set = session_cookie(&r).expect("a session cookie");
    assert!(
        set.starts_with("__Host-samverkan=") && set.contains("Secure"),
        "{set}"
    );
}

#[tokio::test]
async fn a_post_without_this_sessions_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let vakt = Browser::sign_in(&app, "vakt1").await;
    let other = Browser::sign_in(&app, "vakt1").await;
    let theirs = other.csrf("/observations/new").await;
    let mine = vakt.csrf("/observations/new").await;
    assert_ne!(mine, theirs);
    let form = |csrf: &'static str| {
        vec![
            ("csrf", csrf),
            ("place", "sergels-torg"),
            ("category", "drug_sale"),
            ("observed_at", "2026-12-01T21:30"),
            ("description", "CSRF-MARKER"),
        ]
    };
    let theirs: &'static str = Box::leak(theirs.into_boxed_str());
    let mine: &'static str = Box::leak(mine.into_boxed_str());
    for csrf in ["", "0123456789abcdef0123456789abcdef", theirs] {
        let mut f = form(csrf);
        if csrf.is_empty() {
            f.remove(0);
        }
        let r = vakt.post("/observations", &f).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{csrf}: {}", r.text);
    }
    // From another origin, even with the right token.
    let r = sign_in_form(&app, "vakt1", PASSWORD, Some("https://evil.example")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(session_cookie(&r).is_none());
    let r = app
        .send(
            app.client
                .post(app.url("/observations"))
                .header("cookie", &vakt.cookie)
                .header("origin", "https://evil.example")
                .form(&form(mine)),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!vakt.get("/observations").await.text.contains("CSRF-MARKER"));
    let r = vakt.post("/observations", &form(mine)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert!(vakt.get("/observations").await.text.contains("CSRF-MARKER"));
}

#[tokio::test]
async fn every_role_sees_in_the_pages_exactly_the_parts_the_rules_allow() {
    let app = spawn_app().await;
    let world = build_world(&app).await;
    let markers = all_markers();
    for user in DEMO_USERS {
        let (see, _) = expected(user);
        let b = Browser::sign_in(&app, user).await;
        let mut html = String::new();
        for path in [
            "/situation-reports",
            "/observations",
            "/observations?place=sergels-torg",
            "/observations?place=hasselby-torg",
            "/referrals",
            "/audit",
        ] {
            let r = b.get(path).await;
            html.push_str(&r.text);
        }
        for (key, id) in &world.ids {
            if key.starts_with('F') {
                html.push_str(&b.get(&format!("/referrals/{id}")).await.text);
            }
        }
        // Every page names who is signed in: their own name is no marker here.
        let own = samverkan::demo::USERS
            .iter()
            .find(|u| u.0 == *user)
            .map(|u| u.1)
            .unwrap();
        let html = html.replace(&format!("<span>{own}</span>"), "");
        let shown: BTreeSet<String> = markers
            .iter()
            .filter(|m| html.contains(m.as_str()))
            .cloned()
            .collect();
        assert_eq!(
            shown, see,
            "{user}: the pages show other parts than the API"
        );
        // The accounts page names people (it is for managing them), never case content
        // and never a pseudonym.
        let admin = b.get("/admin").await.text;
        assert!(!admin.contains("M-") && !admin.contains("OV-"), "{user}");
    }
}

#[tokio::test]
async fn a_hidden_referral_is_the_same_404_page_as_one_that_does_not_exist() {
    let app = spawn_app().await;
    let polis = app.token("polis1").await;
    let r = app
        .post(
            "/api/v1/referrals",
            &polis,
            &json!({"receiving_organization": "socialtjansten-norrmalm",
              "child": {"alias": "HIDDEN-CHILD"}, "concern": "HIDDEN-CONCERN"}),
        )
        .await;
    let id = r.json["id"].as_str().unwrap().to_owned();
    let vakt = Browser::sign_in(&app, "vakt1").await;
    let hidden = vakt.get(&format!("/referrals/{id}")).await;
    let missing = vakt
        .get("/referrals/01a2400f-0000-7000-8000-000000000000")
        .await;
    let junk = vakt.get("/referrals/not-an-id").await;
    for r in [&hidden, &missing, &junk] {
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.text, hidden.text);
        assert!(!r.text.contains("HIDDEN"));
    }
}

#[tokio::test]
async fn signing_out_disabling_and_idle_time_end_a_browser_session() {
    let app = spawn_with(|s| s.web.idle_secs = 2).await;
    let vakt = Browser::sign_in(&app, "vakt1").await;
    assert_eq!(vakt.get("/situation-reports").await.status, StatusCode::OK);
    // Disabled by the admin: the open session is refused on its next click.
    let admin = app.token("admin1").await;
    let r = app
        .patch(
            "/api/v1/admin/users/vakt1",
            &admin,
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = vakt.get("/situation-reports").await;
    assert_eq!(
        (r.status, r.headers["location"].to_str().unwrap()),
        (StatusCode::SEE_OTHER, "/login")
    );
    // Signed out: the cookie no longer opens anything.
    let falt = Browser::sign_in(&app, "falt1").await;
    let csrf = falt.csrf("/situation-reports").await;
    let r = falt.post("/logout", &[("csrf", csrf.as_str())]).await;
    assert_eq!(r.headers["location"], "/login");
    assert_eq!(
        falt.get("/situation-reports").await.status,
        StatusCode::SEE_OTHER
    );
    // Idle longer than allowed: to the sign-in page.
    let soc = Browser::sign_in(&app, "soc1").await;
    assert_eq!(soc.get("/referrals").await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let r = soc.get("/referrals").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/login");
}

#[tokio::test]
async fn what_is_done_through_the_pages_is_audited_as_web() {
    let app = spawn_app().await;
    let polis = Browser::sign_in(&app, "polis1").await;
    let csrf = polis.csrf("/referrals/new").await;
    let r = polis
        .post(
            "/referrals",
            &[
                ("csrf", csrf.as_str()),
                ("receiving_organization", "socialtjansten-norrmalm"),
                ("child.alias", "Kalle"),
                ("concern", "Seen alone late at night"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let id = r.headers["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        polis.get(&format!("/referrals/{id}")).await.status,
        StatusCode::OK
    );
    let auditor = app.token("revisor1").await;
    let r = app
        .get(&format!("/api/v1/audit?record={id}"), &auditor)
        .await;
    let entries = r.json["items"].as_array().unwrap();
    let actions: BTreeSet<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["channel"].as_str().unwrap_or("api"),
            )
        })
        .collect();
    assert_eq!(
        actions,
        BTreeSet::from([("create", "web"), ("read", "web")]),
        "{}",
        r.text
    );
    // The API's own entries carry no channel.
    let token = app.token("polis1").await;
    app.get(&format!("/api/v1/referrals/{id}"), &token).await;
    let r = app
        .get(&format!("/api/v1/audit?record={id}&action=read"), &auditor)
        .await;
    assert!(r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.get("channel").is_none()));
}

#[tokio::test]
async fn observations_filter_by_category_and_the_trail_by_purpose() {
    let app = spawn_app().await;
    let vakt = app.token("vakt1").await;
    for (category, text) in [("violence", "CAT-VIOLENCE"), ("drug_sale", "CAT-SALE")] {
        let r = app
            .send(
                app.client
                    .post(app.url("/api/v1/observations"))
                    .bearer_auth(&vakt)
                    .header("x-purpose", "ärende 2026-77")
                    .json(
                        &json!({"place": "sergels-torg", "observed_at": "2026-12-01T21:00:00Z",
                                  "category": category, "description": text}),
                    ),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let polis = app.token("polis1").await;
    let r = app
        .get("/api/v1/observations?category=violence", &polis)
        .await;
    let items = r.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.text);
    assert_eq!(items[0]["category"], "violence");
    assert_eq!(
        app.get("/api/v1/observations?category=nope", &polis)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get("/api/v1/situation-reports?category=violence", &polis)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    // The same filter on the page.
    let b = Browser::sign_in(&app, "polis1").await;
    let page = b.get("/observations?category=drug_sale").await.text;
    assert!(page.contains("CAT-SALE") && !page.contains("CAT-VIOLENCE"));
    // The auditor finds both filings by the purpose they were made for.
    let auditor = app.token("revisor1").await;
    let r = app
        .get(
            "/api/v1/audit?action=create&purpose=%C3%A4rende%202026-77",
            &auditor,
        )
        .await;
    assert_eq!(r.json["items"].as_array().unwrap().len(), 2, "{}", r.text);
}

#[tokio::test]
async fn every_role_finds_statistics_in_the_menu_with_tables_charts_and_the_audit_as_web() {
    let app = spawn_app().await;
    let polis = app.token("polis1").await;
    for (place, n) in [("hasselby-torg", 6), ("sergels-torg", 8)] {
        for i in 0..n {
            let r = app
                .post(
                    "/api/v1/observations",
                    &polis,
                    &json!({"place": place, "category": "drug_use",
                            "observed_at": format!("2025-08-{:02}T21:00:00Z", i + 1)}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        }
    }
    for user in crate::helpers::DEMO_USERS {
        let b = Browser::sign_in(&app, user).await;
        let home = b
            .get("/statistics?from=2025-01&to=2025-12&period=quarter")
            .await;
        assert_eq!(home.status, StatusCode::OK, "{user}: {}", home.text);
        assert!(
            home.text.contains("href=\"/statistics\""),
            "{user}: no menu entry"
        );
        assert!(home.text.contains("<svg"), "{user}: no chart");
        assert!(home.text.contains("id=\"feedback-times\""), "{user}");
    }
    let b = Browser::sign_in(&app, "samordnare1").await;
    let page = b
        .get("/statistics?from=2025-07&to=2025-09&period=quarter")
        .await
        .text;
    // Hässelby torg's third quarter: 6, beside the mean over both places (7.0).
    assert!(
        page.contains("<td>2025-Q3</td><td>Hässelby torg</td><td>6</td><td>7.0</td>"),
        "{page}"
    );
    // The charts speak the page's language.
    assert!(page.contains(">Väntar</text>"), "{page}");
    // The tables download as CSV, from the same query.
    let at = page
        .find("id=\"observations-csv\"")
        .expect("a download link");
    let href = page[at..]
        .split("href=\"")
        .nth(1)
        .and_then(|h| h.split('"').next())
        .expect("href");
    let href = href.replace("&amp;", "&");
    let csv = b.get(&href).await;
    assert_eq!(csv.status, StatusCode::OK, "{href}: {}", csv.text);
    assert!(
        csv.text
            .starts_with("place,place_name,category,period,count"),
        "{}",
        csv.text
    );
    assert!(
        csv.text
            .contains("hasselby-torg,Hässelby torg,,2025-Q3,6,false,7.0"),
        "{}",
        csv.text
    );
    assert_eq!(
        b.get("/statistics/nothing.csv").await.status,
        StatusCode::NOT_FOUND
    );
    // A month that cuts a quarter is refused, as through the API.
    let bad = b
        .get("/statistics?from=2025-08&to=2025-09&period=quarter")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let auditor = app.token("revisor1").await;
    let r = app
        .get(
            "/api/v1/audit?action=statistics_read&actor=samordnare1",
            &auditor,
        )
        .await;
    let items = r.json["items"].as_array().expect("items");
    assert!(items.len() >= 4, "{}", r.text);
    assert!(items.iter().all(|e| e["channel"] == "web"), "{}", r.text);
}

/// The sign-in form with a second-factor code.
async fn sign_in_with_code(app: &TestApp, user: &str, code: &str) -> Resp {
    let form = app.send(app.client.get(app.url("/login"))).await;
    let set = form.headers["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set.split(';').next().unwrap().to_owned();
    let at = form.text.find("name=\"csrf\" value=\"").unwrap();
    let csrf = form.text[at + 19..].split('"').next().unwrap().to_owned();
    app.send(
        app.client
            .post(app.url("/login"))
            .header("cookie", cookie)
            .form(&[
                ("username", user),
                ("password", PASSWORD),
                ("totp", code),
                ("csrf", csrf.as_str()),
            ]),
    )
    .await
}

#[tokio::test]
async fn a_role_that_needs_a_second_factor_enrols_through_the_pages_with_a_qr_code() {
    use crate::second_factor::code;
    let app =
        spawn_with(|s| s.second_factor.required_roles = Some(vec!["social_worker".into()])).await;
    let r = sign_in_form(&app, "soc1", PASSWORD, None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.headers["location"], "/second-factor");
    let cookie = session_cookie(&r).expect("cookie");
    let browser = Browser {
        app: &app,
        cookie: cookie.split(';').next().unwrap().to_owned(),
    };
    // Every other page sends the user to enrolment, and shows nothing of the case data.
    for path in ["/", "/referrals", "/statistics"] {
        let r = browser.get(path).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers["location"], "/second-factor", "{path}");
    }
    let secret_of = |text: &str| -> String {
        let at = text
            .find("id=\"totp-secret\">")
            .expect("the key on the page");
        text[at + 17..].split('<').next().unwrap().to_owned()
    };
    let page = browser.get("/second-factor").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("<svg"), "a QR code");
    assert!(!page.text.contains("<?xml"));
    let secret = secret_of(&page.text);
    // A reload shows the same secret (the app may have scanned it already).
    assert_eq!(secret_of(&browser.get("/second-factor").await.text), secret);
    let csrf = browser.csrf("/second-factor").await;

    let right = code(&secret, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = browser
        .post("/second-factor", &[("csrf", &csrf), ("code", wrong)])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(secret_of(&r.text), secret);
    let r = browser
        .post("/second-factor", &[("csrf", &csrf), ("code", &right)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.text.matches("<li><code>").count(), 10, "{}", r.text);
    // The enrolment-only session ends; the next sign-in needs a code.
    let ended = session_cookie(&r).expect("the cookie is dropped");
    assert!(
        ended.contains("Max-Age=0") || ended.contains("expires"),
        "{ended}"
    );
    let r = sign_in_form(&app, "soc1", PASSWORD, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = sign_in_with_code(&app, "soc1", &code(&secret, 1)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.headers["location"], "/");
    let cookie = session_cookie(&r).expect("cookie");
    let full = Browser {
        app: &app,
        cookie: cookie.split(';').next().unwrap().to_owned(),
    };
    assert_eq!(full.get("/referrals").await.status, StatusCode::OK);
}
