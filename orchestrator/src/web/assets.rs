//! The dashboard's style and script, compiled into the binary and served
//! under a name holding their hash, so a browser keeps them for a year and
//! a new release is fetched at once. Nothing comes from another origin.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    content_type: &'static str,
    body: &'static str,
    /// `<stem>-<hash>.<ext>`.
    name: LazyLock<String>,
}

impl Asset {
    /// Where pages link it.
    pub fn url(&self) -> String {
        format!("/static/{}", *self.name)
    }
}

fn hashed(stem: &str, ext: &str, body: &str) -> String {
    let h = Sha256::digest(body.as_bytes());
    let hex: String = h.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{stem}-{hex}.{ext}")
}

const STYLE_CSS: &str = include_str!("assets/style.css");
const APP_JS: &str = include_str!("assets/app.js");

pub static STYLE: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: STYLE_CSS,
    name: LazyLock::new(|| hashed("style", "css", STYLE_CSS)),
};

pub static SCRIPT: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: APP_JS,
    name: LazyLock::new(|| hashed("app", "js", APP_JS)),
};

pub async fn serve(Path(file): Path<String>) -> Response {
    for a in [&STYLE, &SCRIPT] {
        if file == *a.name {
            let mut r = a.body.into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            super::secure(h);
            return r;
        }
    }
    let mut r = (StatusCode::NOT_FOUND, "no such file").into_response();
    super::secure(r.headers_mut());
    r
}
