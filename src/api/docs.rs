//! `/api/docs`: the API to read and try in a browser (Swagger UI on `/openapi.json`),
//! served from files compiled into the binary — no resource from elsewhere, a strict
//! Content-Security-Policy.

use actix_web::http::header::{self, ContentType};
use actix_web::{get, HttpResponse};

/// The vendored swagger-ui-dist version; it is part of every asset path, so an asset
/// can be cached for good and an upgrade is a new path.
const VERSION: &str = "5.35.0";

const BUNDLE: &[u8] = include_bytes!("docs/swagger-ui-bundle.js");
const STYLE: &[u8] = include_bytes!("docs/swagger-ui.css");
const INIT: &[u8] = include_bytes!("docs/init.js");

/// Scripts and styles from this origin only; images inline (Swagger UI's icons are
/// data: URIs); requests ("Try it out") to this origin only; never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn page() -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>samverkan API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui-{VERSION}.css">
</head>
<body>
<main id="swagger-ui"><noscript>This page needs JavaScript. The API document itself is at <a href="/openapi.json">/openapi.json</a>.</noscript></main>
<script src="/api/docs/swagger-ui-{VERSION}.js"></script>
<script src="/api/docs/init-{VERSION}.js"></script>
</body>
</html>
"#
    )
}

#[get("/api/docs")]
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(ContentType::html())
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .body(page())
}

fn asset(content_type: &'static str, body: &'static [u8]) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(body)
}

#[get("/api/docs/{file}")]
pub async fn file(path: actix_web::web::Path<String>) -> HttpResponse {
    let name = path.into_inner();
    match name
        .strip_suffix(&format!("-{VERSION}.js"))
        .or_else(|| name.strip_suffix(&format!("-{VERSION}.css")))
    {
        Some("swagger-ui") if name.ends_with(".js") => {
            asset("text/javascript; charset=utf-8", BUNDLE)
        }
        Some("swagger-ui") => asset("text/css; charset=utf-8", STYLE),
        Some("init") if name.ends_with(".js") => asset("text/javascript; charset=utf-8", INIT),
        _ => actix_web::ResponseError::error_response(&crate::error::AppError::NotFound),
    }
}
