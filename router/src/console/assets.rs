//! The console's static files, embedded in the binary: our stylesheet and script, and the
//! vendored htmx and uPlot with their licences (`static/vendor/README.md` says which versions
//! and where from). Served under `/console/static/`, open like the login page (they hold nothing
//! private), cached by the browser for a day: their URLs carry the build's version
//! ([`url`]), so a new router is never served a stale copy.

use axum::{
    extract::Path,
    response::{IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header};

/// An embedded file: its name under `/console/static/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("static/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("static/console.js"),
    },
    Asset {
        name: "vendor/htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("static/vendor/htmx.min.js"),
    },
    Asset {
        name: "vendor/htmx.LICENSE",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("static/vendor/htmx.LICENSE"),
    },
    Asset {
        name: "vendor/uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("static/vendor/uPlot.iife.min.js"),
    },
    Asset {
        name: "vendor/uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("static/vendor/uPlot.min.css"),
    },
    Asset {
        name: "vendor/uPlot.LICENSE",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("static/vendor/uPlot.LICENSE"),
    },
];

/// The URL of a static file, with the build's version as a cache-buster.
pub fn url(name: &str) -> String {
    format!("/console/static/{name}?v={}", env!("CARGO_PKG_VERSION"))
}

/// `GET /console/static/{*file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(a.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=86400"),
                ),
            ],
            a.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_present_and_the_vendored_licences_ship_with_them() {
        for a in ASSETS {
            assert!(!a.bytes.is_empty(), "{} is empty", a.name);
        }
        let names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        for vendored in ["htmx", "uPlot"] {
            assert!(
                names.contains(&format!("vendor/{vendored}.LICENSE").as_str()),
                "{vendored}'s licence is served"
            );
        }
        assert!(url("console.js").starts_with("/console/static/console.js?v="));
    }
}
