//! The tus 1.0.0 resumable-upload protocol (core, creation, termination)
//! on `/api/v1/uploads`, so any standard tus client can upload. The
//! removal of unfinished uploads nobody touched is `app::chores`.

use base64::Engine as _;

use super::api::Answer;
use crate::app::state::App;
use crate::archive::{NewUpload, PatchOutcome};
use crate::web::auth::api_caller;
use crate::web::http::{ApiError, Req, Resp};

const VERSION: &str = "1.0.0";
/// The largest upload announced to clients (tus `Tus-Max-Size`).
const MAX_SIZE: u64 = 1 << 42;

fn tus(resp: Resp) -> Resp {
    resp.header("Tus-Resumable", VERSION)
        .header("Cache-Control", "no-store")
}

fn tus_error(err: impl Into<ApiError>) -> ApiError {
    err.into().with_header("Tus-Resumable", VERSION)
}

fn check_version(req: &Req) -> Result<(), ApiError> {
    match req.header("Tus-Resumable") {
        Some(VERSION) => Ok(()),
        _ => Err(ApiError::new(
            412,
            "tus_version",
            "This server speaks tus 1.0.0: send `Tus-Resumable: 1.0.0`.",
        )
        .with_header("Tus-Version", VERSION)),
    }
}

/// A header that must be a byte count: ASCII digits only (no sign, no
/// spaces inside), as tus says.
fn header_u64(req: &Req, name: &str) -> Result<u64, ApiError> {
    let value = req
        .header(name)
        .ok_or_else(|| ApiError::bad_request(format!("The {name} header is missing.")))?;
    parse_digits(value).ok_or_else(|| {
        ApiError::bad_request(format!(
            "The {name} header must be a whole number of bytes (digits only), not {value:?}."
        ))
    })
}

fn parse_digits(value: &str) -> Option<u64> {
    let value = value.trim_matches([' ', '\t']);
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// `Upload-Metadata: key base64,key2 base64`.
pub fn parse_metadata(header: &str) -> Result<std::collections::HashMap<String, String>, ApiError> {
    let mut out = std::collections::HashMap::new();
    for pair in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| {
                ApiError::bad_request(format!("Upload-Metadata value for {key:?} is not base64."))
            })?;
        out.insert(
            key.to_string(),
            String::from_utf8_lossy(&decoded).into_owned(),
        );
    }
    Ok(out)
}

pub fn options() -> Answer {
    Ok(Resp::new(204)
        .header("Tus-Resumable", VERSION)
        .header("Tus-Version", VERSION)
        .header("Tus-Extension", "creation,termination")
        .header("Tus-Max-Size", MAX_SIZE.to_string()))
}

pub fn create(app: &App, req: &mut Req) -> Answer {
    check_version(req)?;
    let caller = api_caller(app, req).map_err(tus_error)?;
    if req.header("Upload-Defer-Length").is_some() {
        return Err(tus_error(ApiError::bad_request(
            "Uploads of unknown length are not supported: send Upload-Length.",
        )));
    }
    let length = header_u64(req, "Upload-Length").map_err(tus_error)?;
    if length > MAX_SIZE {
        return Err(tus_error(ApiError::new(
            413,
            "too_large",
            format!("An upload may have at most {MAX_SIZE} bytes."),
        )));
    }
    let metadata =
        parse_metadata(req.header("Upload-Metadata").unwrap_or("")).map_err(tus_error)?;
    let upload = app
        .archives
        .create_upload(NewUpload {
            owner_id: caller.user.id.clone(),
            name: metadata.get("name").cloned().unwrap_or_default(),
            filename: metadata.get("filename").cloned().unwrap_or_default(),
            relative_path: metadata.get("relative_path").cloned(),
            length,
        })
        .map_err(tus_error)?;
    Ok(tus(Resp::new(201)
        .header("Location", format!("/api/v1/uploads/{}", upload.id))
        .header("Upload-Offset", "0")))
}

pub fn head(app: &App, req: &mut Req, upload_id: &str) -> Answer {
    check_version(req)?;
    let caller = api_caller(app, req).map_err(tus_error)?;
    let status = app
        .archives
        .upload_status(&caller.user.id, upload_id)
        .map_err(tus_error)?;
    let mut resp = tus(Resp::new(200))
        .header("Upload-Offset", status.offset.to_string())
        .header("Upload-Length", status.length.to_string());
    if let Some(archive_id) = status.archive_id {
        resp = resp.header("Archive-Id", archive_id);
    }
    Ok(resp)
}

pub fn patch(app: &App, req: &mut Req, upload_id: &str) -> Answer {
    check_version(req)?;
    let caller = api_caller(app, req).map_err(tus_error)?;
    if req
        .header("Content-Type")
        .map(|v| v.split(';').next().unwrap_or("").trim())
        != Some("application/offset+octet-stream")
    {
        return Err(tus_error(ApiError::new(
            415,
            "content_type",
            "A PATCH body must have Content-Type: application/offset+octet-stream.",
        )));
    }
    let offset = header_u64(req, "Upload-Offset").map_err(tus_error)?;
    let length = req.body_length();
    let outcome = app
        .archives
        .patch_upload(&caller.user.id, upload_id, offset, length, req.body())
        .map_err(tus_error)?;
    Ok(match outcome {
        PatchOutcome::Stored { offset } => {
            tus(Resp::new(204)).header("Upload-Offset", offset.to_string())
        }
        PatchOutcome::Complete { archive } => {
            crate::ops::archives::uploaded(app, &caller.user.username, &archive);
            tus(Resp::new(204))
                .header("Upload-Offset", archive.size.to_string())
                .header("Archive-Id", archive.id.clone())
        }
    })
}

pub fn delete(app: &App, req: &mut Req, upload_id: &str) -> Answer {
    check_version(req)?;
    let caller = api_caller(app, req).map_err(tus_error)?;
    crate::ops::archives::discard_upload(app, &caller.user.id, upload_id).map_err(tus_error)?;
    Ok(tus(Resp::new(204)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata() {
        let parsed = parse_metadata("name aG9saWRheQ==,filename YS5qcGc=, empty").unwrap();
        assert_eq!(parsed["name"], "holiday");
        assert_eq!(parsed["filename"], "a.jpg");
        assert_eq!(parsed["empty"], "");
        assert!(parse_metadata("name !!!").is_err());
    }

    #[test]
    fn byte_counts_are_digits_only() {
        for (value, expected) in [
            ("5", Some(5)),
            (" 42 ", Some(42)),
            ("0", Some(0)),
            ("+5", None),
            ("-5", None),
            ("5 5", None),
            ("0x10", None),
            ("", None),
            ("٥", None),
            ("99999999999999999999999", None),
        ] {
            assert_eq!(parse_digits(value), expected, "{value:?}");
        }
    }
}
