//! Bearer tokens and their roles: writes always need a token, reads only
//! when the server is configured so. Handlers take [`Reader`],
//! [`Reporter`] or [`Operator`] as an argument, so what each endpoint needs
//! is visible in its signature.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;

use super::error::ApiError;
use super::AppState;
use crate::store::{Holder, Role};

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

/// The token of the request, if it has the role `need` (401 without a
/// known token, 403 with one whose role is too small).
async fn check(parts: &Parts, state: &AppState, need: Role) -> Result<Holder, ApiError> {
    let secret = bearer(&parts.headers).map_err(ApiError::unauthorized)?;
    let Some(holder) = state.app.check_token(secret).await? else {
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
}

impl FromRequestParts<AppState> for Reporter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let h = check(parts, state, Role::Reporter).await?;
        tracing::debug!(token = %h.name, "authorised report");
        Ok(Reporter { token: h.name })
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
            check(parts, state, Role::Reader).await?;
        }
        Ok(Reader)
    }
}
