//! Single sign-on against a real, certified OpenID Provider (panva's `oidc-provider` from
//! the npm registry, pinned in tests/oidc/package-lock.json), started by each test: its
//! access tokens act for the local account they name; forged, foreign, expired and
//! misaddressed tokens are refused; keys rotate; a provider that is down does not stop
//! tokens its cached keys signed.
//!
//! Needs node and `npm ci --prefix tests/oidc`; without them the tests pass with a note,
//! unless `SAMVERKAN_OIDC_TESTS=required` (as `.ci/run` sets).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_with, TestApp};

fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Whether the provider can run here; says why not (and fails when it is required).
fn available() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let installed = harness().join("node_modules/oidc-provider").exists();
    if node && installed {
        return true;
    }
    let why = if node {
        "tests/oidc/node_modules missing (npm ci --prefix tests/oidc)"
    } else {
        "no node"
    };
    assert!(
        std::env::var("SAMVERKAN_OIDC_TESTS").as_deref() != Ok("required"),
        "OpenID Provider tests required, but {why}"
    );
    eprintln!("OpenID Provider tests skipped: {why}");
    false
}

fn node(script: &str, args: &[&str]) -> String {
    let out = Command::new("node")
        .arg(harness().join(script))
        .args(args)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn make_keys(file: &Path, alg: &str, kid: &str, append: bool) {
    let mut args = vec![
        "--alg",
        alg,
        "--kid",
        kid,
        "--out",
        file.to_str().expect("path"),
    ];
    if append {
        args.push("--append");
    }
    node("make-keys.mjs", &args);
}

/// A running provider; stopped when dropped.
struct Provider {
    child: Child,
    issuer: String,
    keys: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    fn start(alg: &str) -> Provider {
        Provider::start_for(alg, "http://127.0.0.1:8080/auth/oidc/callback")
    }

    /// A provider whose client `samverkan` may return to `redirect_uri`.
    fn start_for(alg: &str, redirect_uri: &str) -> Provider {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = dir.path().join("keys.json");
        make_keys(&keys, alg, "k1", false);
        let mut child = Command::new("node")
            .arg(harness().join("provider.mjs"))
            .args(["--port", "0", "--keys", keys.to_str().expect("path")])
            .env("OIDC_REDIRECT_URIS", redirect_uri)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the provider");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("READY line");
        let issuer = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("provider said {line:?}"))
            .to_owned();
        Provider {
            child,
            issuer,
            keys,
            _dir: dir,
        }
    }

    /// A real access token for `user`, by the authorization-code flow.
    fn token(&self, user: &str) -> String {
        let out = node("login.mjs", &["--issuer", &self.issuer, "--user", user]);
        let v: Value = serde_json::from_str(&out).expect("login.mjs JSON");
        v["access_token"].as_str().expect("access_token").to_owned()
    }

    /// `claims` signed by the key `kid` of `keys` (this provider's file by default).
    fn sign(&self, keys: Option<&Path>, claims: &Value, header: &Value) -> String {
        let keys = keys.unwrap_or(&self.keys);
        node(
            "sign.mjs",
            &[
                "--keys",
                keys.to_str().expect("path"),
                "--claims",
                &claims.to_string(),
                "--header",
                &header.to_string(),
            ],
        )
    }

    async fn jwks_hits(&self) -> u64 {
        let base = self.issuer.trim_end_matches('/');
        crate::helpers::http_get(format!("{base}/__jwks_hits"))
            .await
            .expect("hits")
            .text()
            .await
            .expect("text")
            .parse()
            .expect("a number")
    }

    async fn jwks_kids(&self) -> Vec<String> {
        let v: Value = crate::helpers::http_get(format!("{}/jwks", self.issuer))
            .await
            .expect("jwks")
            .json()
            .await
            .expect("json");
        v["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter_map(|k| k["kid"].as_str().map(str::to_owned))
            .collect()
    }

    fn claims(&self, user: &str) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        json!({
            "iss": self.issuer, "aud": "samverkan-api", "sub": user,
            "preferred_username": user, "iat": now, "nbf": now - 1, "exp": now + 300,
        })
    }
}

/// GET on a new connection: node runs between requests (seconds) outlast the server's
/// keep-alive, and a reused connection the server just closed fails the request.
async fn get(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    let client = crate::helpers::http_client_builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let r = client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn app_for(provider: &Provider) -> TestApp {
    app_on(provider, None).await
}

async fn app_on(provider: &Provider, port: Option<u16>) -> TestApp {
    let issuer = provider.issuer.clone();
    spawn_with(move |s| {
        if let Some(port) = port {
            s.bind = format!("127.0.0.1:{port}");
        }
        s.oidc = Some(samverkan::config::OidcSettings {
            issuer,
            audience: "samverkan-api".into(),
            username_claim: "preferred_username".into(),
            leeway_secs: 5,
            jwks_min_refresh_secs: 2,
            client_id: Some("samverkan".into()),
            client_secret: Some(samverkan::config::Secret::new("samverkan-test-secret")),
            name: "Test provider".into(),
        });
    })
    .await
}

#[tokio::test]
async fn an_agency_token_acts_for_the_local_account_with_its_role_and_places() {
    if !available() {
        return;
    }
    let provider = tokio::task::spawn_blocking(|| Provider::start("RS256"))
        .await
        .expect("provider");
    let app = app_for(&provider).await;
    let token = provider.token("polis1");
    let me = app.get("/api/v1/me", &token).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.json["username"], "polis1");
    assert_eq!(me.json["role"], "police_officer");
    assert_eq!(
        app.get("/api/v1/observations", &token).await.status,
        StatusCode::OK
    );

    // Who the provider says the person is, but no account here: a 403 that says so.
    let stranger = provider.token("okand1");
    let r = app.get("/api/v1/me", &stranger).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.json["error"], "no_local_account");
    assert!(r.text.contains("okand1"), "{}", r.text);
    // A disabled account likewise.
    let admin = app.token("admin1").await;
    let r = app
        .patch(
            "/api/v1/admin/users/vakt2",
            &admin,
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.get("/api/v1/me", &provider.token("vakt2")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.json["error"], "account_disabled");

    // All of it on the audit trail.
    let auditor = app.token("revisor1").await;
    let r = app.get("/api/v1/audit?action=login", &auditor).await;
    let entries = r.json["items"].as_array().expect("items").clone();
    let has = |who: &str, outcome: &str, part: &str| {
        entries.iter().any(|e| {
            e["record_id"] == who
                && e["outcome"] == outcome
                && e["parts"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|x| x == part))
        })
    };
    assert!(has("polis1", "success", "oidc"), "{entries:?}");
    assert!(has("okand1", "denied", "no_local_account"), "{entries:?}");
    assert!(has("vakt2", "denied", "account_disabled"), "{entries:?}");

    // The police turn local passwords off: the password no longer signs in, the
    // provider's tokens still do.
    let org = me.json["organization"]["id"]
        .as_str()
        .expect("org")
        .to_owned();
    let r = app
        .patch(
            &format!("/api/v1/admin/organizations/{org}"),
            &admin,
            &json!({"password_login": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["password_login"], false);
    let r = app.login_full("polis1", crate::helpers::PASSWORD).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.json["error"], "password_login_disabled");
    assert_eq!(
        app.get("/api/v1/me", &provider.token("polis1"))
            .await
            .status,
        StatusCode::OK
    );
    // Other organisations keep their passwords.
    assert_eq!(
        app.login_full("soc1", crate::helpers::PASSWORD)
            .await
            .status,
        StatusCode::OK
    );

    // Signing out with the provider's token ends its session here at once.
    let r = app.logout(&token).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        app.get("/api/v1/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn forged_foreign_expired_and_misaddressed_tokens_are_refused() {
    if !available() {
        return;
    }
    let provider = tokio::task::spawn_blocking(|| Provider::start("RS256"))
        .await
        .expect("provider");
    let app = app_for(&provider).await;
    let good = provider.claims("polis1");
    // The control: the same way of signing, everything right.
    let ok = provider.sign(None, &good, &json!({}));
    assert_eq!(get(&app, "/api/v1/me", &ok).await.0, StatusCode::OK);

    let other = tempfile::tempdir().expect("dir");
    let same_kid = other.path().join("same-kid.json");
    make_keys(&same_kid, "RS256", "k1", false);
    let es_kid1 = other.path().join("es.json");
    make_keys(&es_kid1, "ES256", "k1", false);
    let mut cases: Vec<(&str, String)> = Vec::new();
    let mut with = |name: &'static str, f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        cases.push((name, provider.sign(None, &c, &json!({}))));
    };
    with("wrong audience", &|c| c["aud"] = json!("another-api"));
    with("wrong issuer", &|c| {
        c["iss"] = json!("http://127.0.0.1:1/evil")
    });
    with("expired", &|c| {
        c["exp"] = json!(c["iat"].as_i64().unwrap() - 120)
    });
    with("not yet valid", &|c| {
        c["nbf"] = json!(c["iat"].as_i64().unwrap() + 120)
    });
    with("no username", &|c| {
        c.as_object_mut().unwrap().remove("preferred_username");
    });
    cases.push((
        "a second provider's key with the same kid",
        provider.sign(Some(&same_kid), &good, &json!({})),
    ));
    cases.push((
        "alg swapped (ES256 under the RS256 key's kid)",
        provider.sign(Some(&es_kid1), &good, &json!({})),
    ));
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    cases.push((
        "alg none",
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "kid": "k1"})),
            b64(&good)
        ),
    ));
    // HS256 keyed with the provider's public key: the classic confusion attack.
    let public = crate::helpers::http_get(format!("{}/jwks", provider.issuer))
        .await
        .expect("jwks")
        .text()
        .await
        .expect("text");
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some("k1".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &good,
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()).expect("key"),
    )
    .expect("hs256");
    cases.push(("HS256 with the public key as secret", hs));

    for (name, token) in &cases {
        let (status, body) = get(&app, "/api/v1/me", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(body["error"], "invalid_token", "{name}: {body}");
    }
}

#[tokio::test]
async fn keys_rotate_bogus_kids_do_not_hammer_the_provider_and_cached_keys_outlive_it() {
    if !available() {
        return;
    }
    let mut provider = tokio::task::spawn_blocking(|| Provider::start("RS256"))
        .await
        .expect("provider");
    let app = app_for(&provider).await;
    let first = provider.token("polis1");
    assert_eq!(get(&app, "/api/v1/me", &first).await.0, StatusCode::OK);

    // Thirty tokens with kids the provider never had, after the refetch interval: at
    // most one more fetch of the key set.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = provider.jwks_hits().await;
    let foreign = tempfile::tempdir().expect("dir");
    let foreign_keys = foreign.path().join("k.json");
    make_keys(&foreign_keys, "RS256", "bogus", false);
    let claims = provider.claims("polis1");
    let bogus: Vec<String> = (0..30)
        .map(|i| {
            provider.sign(
                Some(&foreign_keys),
                &claims,
                &json!({"kid": format!("bogus-{i}")}),
            )
        })
        .collect();
    for t in &bogus {
        assert_eq!(get(&app, "/api/v1/me", t).await.0, StatusCode::UNAUTHORIZED);
    }
    let fetched = provider.jwks_hits().await - before;
    assert!(
        fetched <= 1,
        "{fetched} fetches of the key set for 30 bogus kids"
    );

    // Rotation: a new key (EdDSA) signs; tokens it signs are taken once the interval
    // has passed since the last fetch.
    make_keys(&provider.keys, "EdDSA", "k2", true);
    let pid = i32::try_from(provider.child.id()).expect("pid");
    // SAFETY: kill(2) with a child's pid and a signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    for _ in 0..100 {
        if provider.jwks_kids().await.contains(&"k2".to_owned()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let rotated = provider.token("polis1");
    let (status, body) = get(&app, "/api/v1/me", &rotated).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The provider goes down: a token its cached key signed still works.
    let unseen = provider.token("analytiker1");
    let _ = provider.child.kill();
    let _ = provider.child.wait();
    let (status, body) = get(&app, "/api/v1/me", &unseen).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "police_analyst");
}

/// The pages' "Log in with …": the browser goes through the provider and comes back.
fn browser_login(start: &str, user: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--start", start, "--user", user];
    args.extend_from_slice(extra);
    serde_json::from_str(&node("login.mjs", &args)).expect("login.mjs JSON")
}

#[tokio::test]
async fn the_pages_sign_in_through_the_provider_with_pkce_state_and_nonce() {
    if !available() {
        return;
    }
    let port = crate::process::free_port();
    let callback = format!("http://127.0.0.1:{port}/auth/oidc/callback");
    let provider = tokio::task::spawn_blocking(move || Provider::start_for("ES256", &callback))
        .await
        .expect("provider");
    let app = app_on(&provider, Some(port)).await;
    let page = app.send(app.client.get(app.url("/login"))).await;
    assert!(
        page.text.contains("href=\"/login/oidc\""),
        "no single sign-on on the login page"
    );
    assert!(page.text.contains("Test provider"));
    let start = app.url("/login/oidc");

    let done = {
        let start = start.clone();
        tokio::task::spawn_blocking(move || browser_login(&start, "soc1", &[]))
            .await
            .expect("login")
    };
    assert_eq!(done["status"], 303, "{done}");
    assert_eq!(done["location"], "/", "{done}");
    let cookie = done["set_cookie"]
        .as_array()
        .expect("cookies")
        .iter()
        .filter_map(|c| c.as_str())
        .find(|c| c.starts_with("samverkan="))
        .unwrap_or_else(|| panic!("no session cookie: {done}"))
        .split(';')
        .next()
        .expect("cookie")
        .to_owned();
    let r = app
        .send(
            app.client
                .get(app.url("/referrals"))
                .header("cookie", &cookie),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // A forged state, or a callback without the browser's own cookie, signs no one in.
    for extra in [["--tamper-state"], ["--drop-cookies"]] {
        let start = start.clone();
        let r = tokio::task::spawn_blocking(move || browser_login(&start, "soc1", &extra))
            .await
            .expect("login");
        assert_ne!(r["status"], 303, "{extra:?}: {r}");
        let cookies = r["set_cookie"].as_array().cloned().unwrap_or_default();
        assert!(
            !cookies
                .iter()
                .filter_map(|c| c.as_str())
                .any(|c| c.starts_with("samverkan=") && !c.starts_with("samverkan=;")),
            "{extra:?}: {r}"
        );
    }
    // A person the provider knows but samverkan does not: told so, no session.
    let r = tokio::task::spawn_blocking(move || browser_login(&start, "okand2", &[]))
        .await
        .expect("login");
    assert_eq!(r["status"], 403, "{r}");
}
