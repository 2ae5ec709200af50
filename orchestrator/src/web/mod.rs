//! The dashboard: server-rendered pages at `/` for the people who run,
//! write and read tasks, served by `ferrotron serve` beside the API.
//!
//! - Every page is plain HTML that works without JavaScript; one script
//!   (`/static/app-<hash>.js`, no inline code, no CDN) makes the live
//!   parts live: the job list and a running job's summary are re-fetched
//!   as HTML fragments, a running job's log is streamed from the API.
//! - Headers: a strict Content-Security-Policy (only this origin's
//!   script and style), `nosniff`, no framing, `no-cache` on pages and
//!   year-long caching of the hashed assets.
//! - Auth as the API's: reading is public unless
//!   `--require-token-for-reads`; actions (cancel, idle, resume) need an
//!   operator token, entered once on `/login` and kept in a session cookie
//!   (HttpOnly, SameSite=Strict) for the browser's session. Forms post to
//!   this origin only (the `Origin` header is checked as well).
//!
//! Pages: [`jobs`] (the list, a job, its files), [`history`] (an item, a
//! testcase), [`ops`] (hosts, queue), [`find`] (search).

mod assets;
mod find;
mod history;
pub mod html;
mod jobs;
mod ops;
mod plot;
pub mod session;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::api::AppState;
use html::esc;

pub use session::COOKIE;

/// The pages and their actions.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(jobs::list))
        .route("/jobs/{uuid}", get(jobs::show))
        .route("/jobs/{uuid}/files/{*path}", get(jobs::file))
        .route("/jobs/{uuid}/cancel", post(jobs::cancel))
        .route("/items/{*item}", get(history::item))
        .route("/testcases/{*name}", get(history::testcase))
        .route("/hosts", get(ops::hosts))
        .route("/hosts/{name}/idle", post(ops::idle))
        .route("/hosts/{name}/resume", post(ops::resume))
        .route("/queue", get(ops::queue))
        .route("/search", get(find::search))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/static/{file}", get(assets::serve))
}

/// The policy of every page: only this origin's script and style, no
/// plugins, no framing, forms to this origin only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       img-src 'self' data:; connect-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Jobs,
    Queue,
    Hosts,
    Search,
    None,
}

/// A page: its title, where it sits, its body, and who is signed in.
pub struct Page<'a> {
    pub title: &'a str,
    pub nav: Nav,
    pub body: String,
    pub who: &'a session::Who,
}

impl Page<'_> {
    pub fn render(self) -> Response {
        let item = |n: Nav, href: &str, label: &str| {
            let cur = if n == self.nav {
                " aria-current=\"page\""
            } else {
                ""
            };
            format!("<a href=\"{href}\"{cur}>{label}</a>")
        };
        let who = match &self.who.token {
            Some(t) => format!(
                "<form method=\"post\" action=\"/logout\" class=\"who\">\
                 <span>token <b>{}</b></span> <button type=\"submit\">Sign out</button></form>",
                esc(&t.name)
            ),
            None => "<a class=\"who\" href=\"/login\">Sign in</a>".to_string(),
        };
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"icon\" href=\"data:,\">\
             <title>{title} · Ferrotron</title>\
             <link rel=\"stylesheet\" href=\"{css}\">\
             <script src=\"{js}\" defer></script></head><body>\
             <header><nav><a class=\"brand\" href=\"/\">Ferrotron</a>{jobs}{queue}{hosts}{search}</nav>{who}</header>\
             <main>{main}</main>\
             <footer><a href=\"/api/openapi.json\">API</a> · <a href=\"/api/v2.0/\">ResultsDB v2.0</a></footer>\
             </body></html>\n",
            title = esc(self.title),
            css = assets::STYLE.url(),
            js = assets::SCRIPT.url(),
            jobs = item(Nav::Jobs, "/", "Jobs"),
            queue = item(Nav::Queue, "/queue", "Queue"),
            hosts = item(Nav::Hosts, "/hosts", "Hosts"),
            search = item(Nav::Search, "/search", "Search"),
            main = self.body,
        );
        html_response(StatusCode::OK, body)
    }
}

/// An HTML answer with the dashboard's headers.
pub fn html_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(h);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The headers every dashboard answer carries.
pub fn secure(h: &mut axum::http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// What a page could not show, as a page.
#[derive(Debug)]
pub enum WebError {
    NotFound(String),
    BadRequest(String),
    /// Reading needs a token: go sign in, then come back.
    SignIn {
        back: String,
    },
    Forbidden(String),
    Internal(String),
}

impl From<crate::store::StoreError> for WebError {
    fn from(e: crate::store::StoreError) -> WebError {
        match e {
            crate::store::StoreError::NotFound { what, name } => {
                WebError::NotFound(format!("no {what} `{name}`"))
            }
            e => WebError::Internal(crate::util::full(&e)),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, msg) = match self {
            WebError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m),
            WebError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m),
            WebError::Internal(m) => {
                tracing::error!(error = %m, "dashboard page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error",
                    "the page could not be built; the server's log says why".to_string(),
                )
            }
            WebError::SignIn { back } => {
                return see_other(&html::url("/login", &[("next", &back)]));
            }
        };
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"icon\" href=\"data:,\">\
             <title>{t} · Ferrotron</title><link rel=\"stylesheet\" href=\"{css}\"></head>\
             <body><header><nav><a class=\"brand\" href=\"/\">Ferrotron</a></nav></header>\
             <main><h1>{t}</h1><p class=\"error\">{m}</p></main></body></html>\n",
            t = esc(title),
            m = esc(&msg),
            css = assets::STYLE.url(),
        );
        html_response(status, body)
    }
}

/// A `303 See Other` to `to` (a path on this server), after an action.
pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secure(r.headers_mut());
    r
}

/// `(key, value)` pairs of a query string, decoded.
pub fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    serde_urlencoded::from_str(q.unwrap_or("")).unwrap_or_default()
}

/// The first value of `key`, if not empty.
pub fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == key && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

/// A filter form's text fields `(label, name, placeholder)`, each holding
/// the value the query gave it (escaped).
pub fn text_fields(pairs: &[(String, String)], fields: &[(&str, &str, &str)]) -> String {
    fields
        .iter()
        .map(|(label, name, hint)| {
            let hint = if hint.is_empty() {
                String::new()
            } else {
                format!(" placeholder=\"{}\"", esc(hint))
            };
            format!(
                "<label>{label} <input name=\"{name}\" value=\"{}\"{hint}></label>",
                esc(param(pairs, name).unwrap_or(""))
            )
        })
        .collect()
}
