//! The one error type of the service and its JSON shape `{"error": code, "message": text}`.
//! Client errors say what to fix; a 500 says nothing and the cause goes to the log only.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable snake_case code a client can branch on.
    pub error: String,
    /// A sentence for a person: what happened and what to do.
    pub message: String,
    /// On a 429: seconds to wait before trying again (also in `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("authentication required")]
    Unauthorized { code: &'static str, message: String },
    #[error("forbidden")]
    Forbidden,
    /// A 403 whose reason the user's own request already reveals (their place
    /// assignments, their role), so saying it helps and leaks nothing.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// The path exists, the method does not; `allow` lists the methods it has.
    #[error("method not allowed")]
    MethodNotAllowed { allow: String },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("service busy")]
    Unavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        AppError::Unauthorized {
            code: "unauthorized",
            message: message.into(),
        }
    }

    /// A bearer token that is not (or no longer) accepted: RFC 6750's `invalid_token`.
    pub fn invalid_token(message: impl Into<String>) -> Self {
        AppError::Unauthorized {
            code: "invalid_token",
            message: message.into(),
        }
    }

    /// A well-signed access token past its lifetime: refresh it.
    /// A 403 for a token good only for enrolling a second factor.
    pub fn second_factor_required() -> Self {
        AppError::Refused {
            code: "second_factor_required",
            message: "Your role requires a second factor: enrol one (POST /api/v1/auth/totp/enroll, then /confirm) and sign in again with the code.".into(),
        }
    }

    pub fn token_expired() -> Self {
        AppError::Unauthorized {
            code: "token_expired",
            message: "The access token has expired: get a new one with POST /api/v1/auth/refresh (or sign in again).".into(),
        }
    }

    /// Logs the cause now; the client sees a generic 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        AppError::Internal(cause.to_string())
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest { code, .. }
            | AppError::Unauthorized { code, .. }
            | AppError::Refused { code, .. } => code,
            AppError::Forbidden => "forbidden",
            AppError::NotFound => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::MethodNotAllowed { .. } => "method_not_allowed",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::TooManyRequests { .. } => "too_many_requests",
            AppError::Unavailable => "service_unavailable",
            AppError::Internal(_) => "internal_error",
        }
    }

    fn public_message(&self) -> String {
        match self {
            AppError::BadRequest { message, .. }
            | AppError::Unauthorized { message, .. }
            | AppError::Refused { message, .. } => message.clone(),
            AppError::Forbidden => "You are not allowed to do this.".into(),
            AppError::NotFound => "Not found.".into(),
            AppError::Conflict(m) => m.clone(),
            AppError::MethodNotAllowed { allow } => format!("This path takes only {allow}."),
            AppError::PayloadTooLarge => "The request body is larger than allowed.".into(),
            AppError::UnsupportedMediaType => {
                "This endpoint takes a JSON body: send it with Content-Type: application/json."
                    .into()
            }
            AppError::TooManyRequests { retry_after_secs } => {
                format!("Too many attempts: wait {retry_after_secs} seconds, then try again.")
            }
            AppError::Unavailable => "The service is busy; try again shortly.".into(),
            AppError::Internal(_) => "Something went wrong on our side.".into(),
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::internal(format!("database: {e}"))
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            AppError::Forbidden | AppError::Refused { .. } => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let AppError::Internal(cause) = self {
            tracing::error!(cause = %cause, "internal error");
        }
        let mut resp = HttpResponse::build(self.status_code());
        match self {
            AppError::TooManyRequests { retry_after_secs } => {
                resp.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            // RFC 6750 3.1: a token that was sent and refused says so; a request without
            // one gets the bare challenge.
            AppError::Unauthorized { code, message }
                if *code == "invalid_token" || *code == "token_expired" =>
            {
                let description = message.replace(['"', '\\'], "'");
                resp.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
                ));
            }
            AppError::Unauthorized { .. } => {
                resp.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            AppError::MethodNotAllowed { allow } => {
                resp.insert_header((header::ALLOW, allow.as_str()));
            }
            _ => {}
        }
        resp.json(ErrorBody {
            error: self.code().to_owned(),
            message: self.public_message(),
            retry_after_secs: match self {
                AppError::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
                _ => None,
            },
        })
    }
}
