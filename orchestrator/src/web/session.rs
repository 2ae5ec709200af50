//! Who is looking: a token entered once on `/login`, kept in a session
//! cookie (HttpOnly: no script reads it; SameSite=Strict: no other site's
//! page sends it; no expiry: it ends with the browser's session), or an
//! `Authorization` header as for the API. Reads need it only with
//! `--require-token-for-reads`; actions need an operator's, from a form of
//! this origin.

use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

use super::html::{esc, href};
use super::{param, query_pairs, see_other, Nav, Page, WebError};
use crate::api::AppState;
use crate::store::{Holder, Role};

/// The session cookie's name.
pub const COOKIE: &str = "ferrotron_token";

/// The token of a request's session cookie, if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// The person looking at a page: their token's name and role, if signed
/// in (an unknown or revoked token counts as none).
pub struct Who {
    pub token: Option<Holder>,
}

impl Who {
    /// The token if it may steer (cancel, idle), else why not.
    pub fn operator(&self) -> Result<&Holder, WebError> {
        match &self.token {
            Some(h) if h.role >= Role::Operator => Ok(h),
            Some(h) => Err(WebError::Forbidden(format!(
                "token `{}` has the role {}; this needs operator",
                h.name, h.role
            ))),
            None => Err(WebError::Forbidden(
                "sign in with an operator token first".into(),
            )),
        }
    }

    pub fn is_operator(&self) -> bool {
        self.operator().is_ok()
    }
}

async fn holder(parts: &Parts, st: &AppState) -> Result<Option<Holder>, WebError> {
    let secret = crate::api::auth::bearer(&parts.headers)
        .ok()
        .or_else(|| cookie_token(&parts.headers));
    match secret {
        Some(s) => Ok(st.app.check_token(&s).await?),
        None => Ok(None),
    }
}

impl FromRequestParts<AppState> for Who {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, WebError> {
        let token = holder(parts, st).await?;
        if token.is_none() && st.config.require_token_for_reads {
            let back = parts
                .uri
                .path_and_query()
                .map_or("/".to_string(), |p| p.as_str().to_string());
            return Err(WebError::SignIn { back });
        }
        // A form's post must come from a page of this server.
        if parts.method == Method::POST && !same_origin(&parts.headers) {
            return Err(WebError::Forbidden(
                "this action must be sent from the dashboard's own page".into(),
            ));
        }
        Ok(Who { token })
    }
}

/// Whether a post came from this origin: the browser's `Sec-Fetch-Site`
/// or `Origin` says so (a request with neither is not a browser's form,
/// and needs the token in its header anyway).
fn same_origin(h: &HeaderMap) -> bool {
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin" || site == "none";
    }
    let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority == host)
}

/// A path on this server to go back to (never another site).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/".into(),
    }
}

pub async fn login_form(who: Who, RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(q.as_deref());
    let next = local_path(param(&pairs, "next"));
    form_page(&who, &next, None, StatusCode::OK)
}

fn form_page(who: &Who, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1>{error}\
         <p>Any token lets you read where the server asks for one. Cancelling jobs and idling \
         hosts need an \
         <b>operator</b> token (<code>ferrotron token create NAME --role operator</code>). \
         The token is kept for this browser session only, in a cookie no script can read.</p>\
         <form method=\"post\" action=\"{action}\" class=\"stack\">\
         <label>Token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Sign in</button></form>",
        action = href("/login", &[("next", next)]),
    );
    let mut r = Page {
        title: "Sign in",
        nav: Nav::None,
        body,
        who,
    }
    .render();
    *r.status_mut() = status;
    r
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    axum::Form(f): axum::Form<LoginForm>,
) -> Result<Response, WebError> {
    let pairs = query_pairs(q.as_deref());
    let next = local_path(param(&pairs, "next"));
    let nobody = Who { token: None };
    if !same_origin(&headers) {
        return Err(WebError::Forbidden(
            "sign in from the dashboard's own page".into(),
        ));
    }
    let token = f.token.trim();
    let valid = token
        .chars()
        .all(|c| c.is_ascii_graphic() && c != ';' && c != ',');
    let Some(holder) = (if valid && !token.is_empty() {
        st.app.check_token(token).await?
    } else {
        None
    }) else {
        return Ok(form_page(
            &nobody,
            &next,
            Some("unknown or revoked token"),
            StatusCode::UNAUTHORIZED,
        ));
    };
    tracing::info!(token = %holder.name, "dashboard sign-in");
    let secure = st
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    let mut r = see_other(&next);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

pub async fn logout(_who: Who) -> Response {
    let mut r = see_other("/");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("ferrotron_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}
