//! `POST /api/v1/messages`: a bus message in the Fedora Messaging envelope
//! goes through the rules into the job queue.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Reporter;
use super::error::{ApiError, ErrorBody};
use super::AppState;
use crate::app::TriggerError;
use crate::rules::Message;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(post_message))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageJobs {
    /// UUIDs of the message's jobs (the existing ones for a duplicate).
    pub jobs: Vec<String>,
    /// The message id was seen before; nothing new was queued.
    pub duplicate: bool,
}

/// Turns a message into queued jobs through the service's rules. The same
/// message id twice makes one set of jobs.
#[utoipa::path(
    post, path = "/api/v1/messages", tag = "jobs",
    request_body(content = String, description = "`{id?, topic, headers?, body}` as JSON", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, body = MessageJobs, description = "Jobs queued"),
        (status = 200, body = MessageJobs, description = "A duplicate: the existing jobs"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "The token posted its --message-limit: retry later"),
        (status = 503, body = ErrorBody, description = "The server runs without rules"),
    )
)]
async fn post_message(
    State(st): State<AppState>,
    w: Reporter,
    body: String,
) -> Result<(StatusCode, Json<MessageJobs>), ApiError> {
    if let Err(wait) = st.messages.take(&w.token) {
        let rate = st.messages.rate();
        return Err(ApiError::Client {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: format!(
                "token `{}` may post {} messages per {} s (--message-limit); retry in {} s",
                w.token,
                rate.count,
                rate.window.as_secs(),
                wait.as_secs().max(1)
            ),
        });
    }
    let msg = Message::from_json(&body)
        .map_err(|e| ApiError::bad_request("bad_message", format!("message: {e}")))?;
    let r = st.app.trigger(&msg).await.map_err(|e| match e {
        TriggerError::NoRules => ApiError::Client {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "no_rules",
            message: e.to_string(),
        },
        TriggerError::Store(e) => ApiError::from(e),
    })?;
    let status = if r.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(MessageJobs {
            jobs: r.jobs,
            duplicate: r.duplicate,
        }),
    ))
}
