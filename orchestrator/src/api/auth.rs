//! Bearer tokens: writes always need one; reads only when the server is
//! configured so. Handlers take [`Writer`] or [`Reader`] as an argument,
//! so which endpoints are protected is visible in their signatures.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use super::AppState;

/// The secret of an `Authorization: Bearer <token>` header, or what is
/// wrong with the request (for a 401).
pub fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, &'static str> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err("this endpoint needs `Authorization: Bearer <token>` (create one with `ferrotron token create NAME`)");
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or("the Authorization header must be `Bearer <token>`")
}

/// The token's name (for the log).
async fn check(parts: &Parts, state: &AppState) -> Result<String, ApiError> {
    let secret = bearer(&parts.headers).map_err(ApiError::unauthorized)?;
    match state.app.check_token(secret).await? {
        Some(name) => Ok(name),
        None => Err(ApiError::unauthorized("unknown or revoked token")),
    }
}

/// A request allowed to write, and the name of its token.
pub struct Writer {
    pub token: String,
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = check(parts, state).await?;
        tracing::debug!(token = %token, "authorised write");
        Ok(Writer { token })
    }
}

/// A request allowed to read.
pub struct Reader;

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.config.require_token_for_reads {
            check(parts, state).await?;
        }
        Ok(Reader)
    }
}
