//! The static files (`/static/{name}`): CSS, scripts and the icon, embedded
//! at build time and served with an `ETag`.

use super::http::{ApiError, Req, Resp};

/// Static files embedded at build time.
const STATIC_FILES: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../templates/static/app.css"),
    ),
    (
        "upload.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/upload.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/admin.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/live.js"),
    ),
    (
        "bars.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/bars.js"),
    ),
    (
        "tus.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/tus.min.js"),
    ),
    (
        "tus-js-client.LICENSE.txt",
        "text/plain; charset=utf-8",
        include_str!("../../templates/static/tus-js-client.LICENSE.txt"),
    ),
    (
        "times.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/times.js"),
    ),
    (
        "list.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/list.js"),
    ),
    (
        "confirm.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/confirm.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../templates/static/favicon.svg"),
    ),
    (
        "setup.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/setup.js"),
    ),
    (
        "device.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/device.js"),
    ),
    (
        "firmware.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/firmware.js"),
    ),
    (
        "tls.js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/tls.js"),
    ),
];

/// `GET /static/{name}`: a file embedded at build time, with an `ETag`
/// (its SHA-256) so a browser revalidates instead of fetching it again:
/// a matching `If-None-Match` is answered 304 without a body.
pub fn static_file(req: &Req, name: &str) -> Result<Resp, ApiError> {
    let Some(index) = STATIC_FILES.iter().position(|(file, _, _)| *file == name) else {
        return Err(ApiError::not_found());
    };
    let (_, content_type, body) = STATIC_FILES[index];
    let etag = static_etags()[index].as_str();
    let cached = req.header("If-None-Match").is_some_and(|tags| {
        tags.split(',')
            .any(|tag| tag.trim() == etag || tag.trim() == "*")
    });
    let resp = Resp::new(if cached { 304 } else { 200 })
        .header("Cache-Control", "no-cache")
        .header("ETag", etag);
    Ok(match cached {
        true => resp,
        false => resp
            .header("Content-Type", content_type)
            .bytes(body.as_bytes().to_vec()),
    })
}

/// Each static file's entity tag (in [`STATIC_FILES`] order): the first
/// 128 bits of its SHA-256, quoted; worked out once.
fn static_etags() -> &'static [String] {
    use sha2::Digest;
    static ETAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ETAGS.get_or_init(|| {
        STATIC_FILES
            .iter()
            .map(|(_, _, body)| {
                let digest = sha2::Sha256::digest(body.as_bytes());
                format!("\"{}\"", hex::encode(&digest[..16]))
            })
            .collect()
    })
}
