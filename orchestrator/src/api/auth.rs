//! Tokens and their roles: writes always need a token, reads only when the
//! server is configured so. Handlers take [`Reader`], [`Reporter`] or
//! [`Operator`] as an argument, so what each endpoint needs is visible in
//! its signature.
//!
//! A token comes as `Authorization: Bearer <token>`, or, for the clients
//! ResultsDB's users already run (an unmodified `resultsdb_api`), as HTTP
//! Basic auth with the token as the password (`request_auth=`), or as
//! `_auth_token` in a JSON body (`auth_token=`; [`body_token`] moves it
//! into the header before any handler sees the body).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::error::ApiError;
use super::AppState;
use crate::store::{Holder, Role};

/// The secret of an `Authorization: Bearer <token>` header (or of Basic
/// auth, the token as the password), or what is wrong with the request
/// (for a 401).
pub fn bearer(headers: &axum::http::HeaderMap) -> Result<String, &'static str> {
    const NEEDS: &str = "this endpoint needs a token: `Authorization: Bearer <token>`, HTTP Basic auth with the token as the password, or `_auth_token` in the JSON body (create one with `ferrotron token create NAME --role R`)";
    const BAD: &str =
        "the Authorization header must be `Bearer <token>` or `Basic <base64 of user:token>`";
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(NEEDS);
    };
    let value = value.to_str().map_err(|_| BAD)?;
    if let Some(t) = value.strip_prefix("Bearer ") {
        let t = t.trim();
        return if t.is_empty() {
            Err(BAD)
        } else {
            Ok(t.to_string())
        };
    }
    let encoded = value.strip_prefix("Basic ").ok_or(BAD)?.trim();
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| BAD)?;
    let text = String::from_utf8(decoded).map_err(|_| BAD)?;
    let (_, password) = text.split_once(':').ok_or(BAD)?;
    if password.is_empty() {
        return Err(BAD);
    }
    Ok(password.to_string())
}

/// The JSON body key an unmodified `resultsdb_api` puts its token in.
pub const BODY_TOKEN_KEY: &str = "_auth_token";

/// Middleware for ResultsDB writes (`POST /api/v2.0/...`, what
/// `resultsdb_api` sends): a JSON object body's `_auth_token` is taken out
/// of it (always: the client sends `null` when it has none) and, when the
/// request has no `Authorization` header, becomes its bearer token. Any
/// other body passes untouched (its handler reports what is wrong).
pub async fn body_token(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, Method};
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let encoded = req.headers().contains_key(header::CONTENT_ENCODING);
    let resultsdb = req.uri().path().starts_with("/api/v2.0/");
    if *req.method() != Method::POST || !resultsdb || !json || encoded {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return ApiError::too_large(format!(
            "length limit exceeded: the request body is larger than {limit} bytes (--max-body-bytes)"
        ))
        .into_response();
    };
    let mut bytes = bytes;
    if let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(&bytes) {
        if let Some(token) = map.remove(BODY_TOKEN_KEY) {
            if let (serde_json::Value::String(t), false) =
                (&token, parts.headers.contains_key(AUTHORIZATION))
            {
                if let Ok(v) = format!("Bearer {t}").parse() {
                    parts.headers.insert(AUTHORIZATION, v);
                }
            }
            bytes = serde_json::to_vec(&map).unwrap_or_default().into();
            parts.headers.remove(header::CONTENT_LENGTH);
        }
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// The token of the request, if it has the role `need` (401 without a
/// known token, 403 with one whose role is too small).
async fn check(parts: &Parts, state: &AppState, need: Role) -> Result<Holder, ApiError> {
    let secret = bearer(&parts.headers).map_err(ApiError::unauthorized)?;
    let Some(holder) = state.app.check_token(&secret).await? else {
        return Err(ApiError::unauthorized("unknown or revoked token"));
    };
    if holder.role < need {
        let allowed: Vec<&str> = Role::ALL
            .into_iter()
            .filter(|r| *r >= need)
            .map(Role::as_str)
            .collect();
        return Err(ApiError::Client {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: format!(
                "token `{}` has the role {}; this needs {}",
                holder.name,
                holder.role,
                allowed.join(" or ")
            ),
        });
    }
    Ok(holder)
}

/// A request allowed to record (results, artifacts, job reports,
/// messages): a `reporter` or `operator` token, whose name it carries.
pub struct Reporter {
    pub token: String,
    pub role: Role,
}

impl FromRequestParts<AppState> for Reporter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let h = check(parts, state, Role::Reporter).await?;
        tracing::debug!(token = %h.name, "authorised report");
        Ok(Reporter {
            token: h.name,
            role: h.role,
        })
    }
}

/// A request allowed to steer (cancel jobs, sync the cache): an
/// `operator` token.
pub struct Operator {
    pub token: String,
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let h = check(parts, state, Role::Operator).await?;
        tracing::info!(token = %h.name, method = %parts.method, path = %parts.uri.path(), "operator request");
        Ok(Operator { token: h.name })
    }
}

/// A request allowed to read: any token when the server asks for one on
/// reads, else anyone.
pub struct Reader;

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.config.require_token_for_reads {
            // The dashboard's pages read the API (a followed log) with
            // the browser's session cookie; only reads take it, so no
            // other site can make a browser change anything with it.
            if !parts.headers.contains_key(AUTHORIZATION) {
                if let Some(t) = crate::web::session::cookie_token(&parts.headers) {
                    if state.app.check_token(&t).await?.is_some() {
                        return Ok(Reader);
                    }
                }
            }
            check(parts, state, Role::Reader).await?;
        }
        Ok(Reader)
    }
}
