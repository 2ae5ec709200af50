//! The one error type of the HTTP API. Clients get a stable `code` and a
//! human `message`; internal causes go to the server log only.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// What every error response carries.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable (snake_case).
    pub code: String,
    /// For humans; may change between versions.
    pub message: String,
    /// ResultsDB's form of a refused body (its pydantic errors), beside
    /// `code`, on ResultsDB writes: one entry per problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_error: Option<Vec<ValidationEntry>>,
}

/// One entry of ResultsDB's `validation_error` list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ValidationEntry {
    /// Where: the field path (`["testcase"]`).
    pub loc: Vec<String>,
    /// Upstream's words where they are known (`Field required`).
    pub msg: String,
    /// `missing` or `value_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What was given there (null: not echoed back).
    pub input: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A problem with the request, shown to the client as is.
    #[error("{message}")]
    Client {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// A refused ResultsDB body: [`ApiError::Client`] plus upstream's
    /// `validation_error` list.
    #[error("{message}")]
    Validation {
        code: &'static str,
        message: String,
        entries: Vec<ValidationEntry>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("file system error")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Client {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::Client {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::Client {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.into(),
        }
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::Client {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "body_too_large",
            message: message.into(),
        }
    }
}

/// Python's repr of the value a message quotes in backticks (`` `now` ``
/// gives `'now'`), as upstream's `%r`; the message itself when it quotes
/// nothing.
fn given(message: &str) -> String {
    let quoted = message
        .split_once('`')
        .and_then(|(_, rest)| rest.rsplit_once('`'))
        .map(|(inner, _)| inner);
    match quoted {
        Some(v) => crate::results::record::python_repr(&serde_json::Value::String(v.into())),
        None => message.to_string(),
    }
}

fn body(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(ErrorBody {
            code: code.to_string(),
            message,
            validation_error: None,
        }),
    )
        .into_response()
}

impl ApiError {
    /// A 400 of a ResultsDB write as upstream words it too: the field
    /// before the message's first `: ` is the `loc`, "required" is
    /// upstream's `missing` ("Field required"), the rest `value_error`.
    pub fn with_validation(self) -> ApiError {
        let ApiError::Client {
            status: StatusCode::BAD_REQUEST,
            code,
            message,
        } = self
        else {
            return self;
        };
        // Upstream answers a colon in a data key with a plain message.
        if code == "bad_data_key" {
            return ApiError::Client {
                status: StatusCode::BAD_REQUEST,
                code,
                message,
            };
        }
        let (field, what) = message
            .split_once(": ")
            .unwrap_or(("body", message.as_str()));
        let mut top = field.split(['.', '[']).next().unwrap_or(field).to_string();
        let (msg, kind) = match (code, what) {
            // pydantic's words in upstream's parsers (resultsdb/parsers/api_v2.py).
            ("unknown_outcome", _) => {
                top = "outcome".into();
                (
                    format!(
                        "Value error, must be one of: {}",
                        crate::results::model::Outcome::ALL
                            .map(|o| o.as_str())
                            .join(", ")
                    ),
                    "value_error",
                )
            }
            ("bad_submit_time", what) => (
                format!(
                    "Value error, Expected timestamp in milliseconds or datetime \
                     (in format YYYY-MM-DDTHH:MM:SS.ffffff), got {}",
                    given(what)
                ),
                "value_error",
            ),
            (_, "required") if field == top => ("Field required".to_string(), "missing"),
            (_, "required" | "must not be empty") if top == "testcase" => (
                "Value error, testcase name must be non-empty".to_string(),
                "value_error",
            ),
            (_, "must not be empty") if top == "name" => (
                "String should have at least 1 character".to_string(),
                "string_too_short",
            ),
            (_, other) => (format!("Value error, {other}"), "value_error"),
        };
        let entries = vec![ValidationEntry {
            loc: vec![top],
            msg,
            kind: kind.to_string(),
            input: None,
        }];
        ApiError::Validation {
            code,
            message,
            entries,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Client {
                status,
                code,
                message,
            } => body(status, code, message),
            ApiError::Validation {
                code,
                message,
                entries,
            } => (
                StatusCode::BAD_REQUEST,
                Json(ErrorBody {
                    code: code.to_string(),
                    message,
                    validation_error: Some(entries),
                }),
            )
                .into_response(),
            ApiError::Store(StoreError::NotFound { what, name }) => body(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} `{name}` not found"),
            ),
            ApiError::Store(StoreError::Conflict(m)) => body(StatusCode::CONFLICT, "conflict", m),
            other => {
                tracing::error!(error = %crate::util::full(&other), "request failed");
                body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal error; the server log has the details".into(),
                )
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        let (status, code) = match &r {
            JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            JsonRejection::JsonDataError(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
            }
            _ => (StatusCode::BAD_REQUEST, "invalid_body"),
        };
        ApiError::Client {
            status,
            code,
            message: r.body_text(),
        }
    }
}

/// A JSON body whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);
