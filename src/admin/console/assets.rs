//! The console's files, embedded from `web/` when the binary is built: a
//! fresh machine serves the console with no extra step and nothing is read
//! from disk or another origin at run time.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "web/"]
#[exclude = "package.json"]
#[exclude = "package-lock.json"]
#[exclude = "*.md"]
struct Web;

/// Only these kinds are served; anything else under `web/` stays private.
fn content_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => return None,
    })
}

fn serve(path: &str) -> Response {
    let (Some(kind), Some(file)) = (content_type(path), Web::get(path)) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, kind),
            // Revalidated on every load: a new binary serves new files.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        file.data.into_owned(),
    )
        .into_response()
}

pub async fn index() -> Response {
    serve("index.html")
}

pub async fn file(Path(path): Path<String>) -> Response {
    serve(&path)
}
