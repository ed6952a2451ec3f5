//! `POST /media` (upload) and `GET /media/{id}` (+ `/thumbnail`).
//!
//! Browsers cannot add an `Authorization` header to `<img>` or `<video>` requests, so reads
//! also accept a media cookie: `POST /media/cookie` (with the bearer token) sets an HttpOnly,
//! SameSite=Strict cookie scoped to `/api/v1/media` that holds a short-lived token valid only
//! for reading media. No token ever appears in a URL.
//!
//! Serving is defensive: `nosniff`, a `sandbox` CSP, `Content-Disposition: attachment` for
//! anything that is not an image, a video or a voice message (so HTML, SVG, scripts and
//! files of unknown type are downloads, never pages), strong ETags with immutable caching (content under an ID never changes), and
//! single byte ranges so videos can be seeked.

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chatnode_protocol::{self as p, ErrorCode};
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;

use super::{ApiQuery, AuthUser, created, no_content};
use crate::SharedState;
use crate::domain::{MediaId, SessionId, UserId};
use crate::error::{Error, Result};
use crate::media::Upload;
use crate::store::MediaRecord;

pub const COOKIE: &str = "chatnode_media";

pub fn router(state: &SharedState) -> Router<SharedState> {
    // The JSON body limit does not apply here: uploads are bounded while they stream.
    let limit = state.media.limits.max_any() as usize + 64 * 1024;
    Router::new()
        .route(
            "/media",
            post(upload).layer(axum::extract::DefaultBodyLimit::max(limit)),
        )
        .route("/media/cookie", post(cookie))
        .route("/media/{id}", get(original))
        .route("/media/{id}/thumbnail", get(thumbnail))
}

#[derive(Deserialize, Default)]
pub(crate) struct UploadQuery {
    name: Option<String>,
    /// The length of a voice message, as the recording client measured it.
    duration_ms: Option<i64>,
}

/// Upload a file: `multipart/form-data` with a `file` part, or the raw bytes as the body
/// with `?name=`. The type is decided from the content.
#[utoipa::path(post, path = "/api/v1/media", tag = "media",
    params(("name" = Option<String>, Query, description = "Original file name (raw uploads)"),
           ("duration_ms" = Option<i64>, Query, description = "Length of a voice message in ms (kept for audio)")),
    request_body(content = Vec<u8>, description = "The file (raw body), or multipart/form-data with a `file` part; any type", content_type = "application/octet-stream"),
    responses((status = 201, description = "Stored", body = p::Media),
              (status = "4XX", description = "Error (413 too large, 415 empty upload)", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn upload(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<UploadQuery>,
    req: Request,
) -> Response {
    match receive_upload(state, auth, q, req).await {
        Ok(r) => r,
        Err(e) => {
            // A refusal may come before the body was read to the end; the connection cannot
            // carry another request, and saying so keeps clients from reusing it.
            let mut r = e.into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

async fn receive_upload(
    state: SharedState,
    auth: AuthUser,
    q: UploadQuery,
    req: Request,
) -> Result<Response> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Refuse before reading anything when the declared size is over every limit.
    if declared.is_some_and(|n| n > state.media.limits.max_any() + 64 * 1024) {
        return Err(Error::new(
            ErrorCode::TooLarge,
            "file is larger than any upload limit",
        ));
    }
    let quota = quota_left(&state, &auth, declared).await?;
    room_on_disk(&state, declared)?;
    if q.duration_ms
        .is_some_and(|d| !(0..=86_400_000).contains(&d))
    {
        return Err(Error::invalid(
            "duration_ms",
            "duration_ms must be between 0 and 86400000",
        ));
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_multipart = content_type
        .as_deref()
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let record = if is_multipart {
        let mut form = Multipart::from_request(req, &state).await.map_err(|e| {
            Error::bad_request(format!("invalid multipart body: {}", e.body_text()))
        })?;
        loop {
            let field = form.next_field().await.map_err(multipart_error)?;
            let Some(field) = field else {
                return Err(Error::invalid(
                    "file",
                    "the multipart body has no `file` part",
                ));
            };
            if field.name() != Some("file") {
                continue;
            }
            let name = field.file_name().map(str::to_owned).or(q.name.clone());
            let declared = field.content_type().map(str::to_owned);
            let stream = field.map_err(multipart_error);
            let upload = Upload {
                name: name.as_deref(),
                declared: declared.as_deref(),
                duration_ms: q.duration_ms,
                quota: quota.clone(),
            };
            break state
                .media
                .ingest(auth.user_id.as_str(), upload, stream)
                .await?;
        }
    } else {
        let stream = req.into_body().into_data_stream().map(|r| {
            r.map_err(|e| {
                if e.to_string().contains("length limit") {
                    Error::new(ErrorCode::TooLarge, "file is too large")
                } else {
                    Error::bad_request("could not read the upload")
                }
            })
        });
        let upload = Upload {
            name: q.name.as_deref(),
            declared: content_type.as_deref(),
            duration_ms: q.duration_ms,
            quota,
        };
        state
            .media
            .ingest(auth.user_id.as_str(), upload, Box::pin(stream))
            .await?
    };
    let media = state.store.create_media(record).await?;
    Ok(created(media))
}

/// What is left of the caller's upload quotas (None: no quota), and the words for passing
/// it; refuses at once when nothing is left or the declared size would not fit.
async fn quota_left(
    state: &SharedState,
    auth: &AuthUser,
    declared: Option<u64>,
) -> Result<Option<(u64, String)>> {
    let (daily, total) = (
        state.config.upload_quota_daily,
        state.config.upload_quota_total,
    );
    if daily.is_none() && total.is_none() {
        return Ok(None);
    }
    let (today, all) = state
        .store
        .upload_usage(&auth.user_id, crate::time::now_ms() - 86_400_000)
        .await?;
    let (today, all) = (today.max(0) as u64, all.max(0) as u64);
    let left_today = daily.map(|q| q.saturating_sub(today));
    let left_all = total.map(|q| q.saturating_sub(all));
    let (left, why) = match (left_today, left_all) {
        (Some(d), Some(t)) if t < d => (t, total_words(all, total)),
        (Some(d), _) => (d, daily_words(today, daily)),
        (None, Some(t)) => (t, total_words(all, total)),
        (None, None) => return Ok(None),
    };
    let why = format!("{why}; {} left", crate::media::human_bytes(left));
    // A multipart body carries some bytes besides the file.
    if left == 0 || declared.is_some_and(|n| n > left + 64 * 1024) {
        return Err(Error::new(
            ErrorCode::QuotaExceeded,
            format!("upload quota exceeded: {why}"),
        ));
    }
    Ok(Some((left, format!("upload quota exceeded: {why}"))))
}

fn daily_words(used: u64, quota: Option<u64>) -> String {
    format!(
        "{} of {} uploaded in the last 24 hours",
        crate::media::human_bytes(used),
        crate::media::human_bytes(quota.unwrap_or(0))
    )
}

fn total_words(used: u64, quota: Option<u64>) -> String {
    format!(
        "{} of {} stored in all",
        crate::media::human_bytes(used),
        crate::media::human_bytes(quota.unwrap_or(0))
    )
}

/// Uploads stop while the data dir's file system is under its free-space floor
/// (`--min-free-disk`), so the database always has room for messages.
fn room_on_disk(state: &SharedState, declared: Option<u64>) -> Result<()> {
    let Ok((available, total)) = crate::media::free_space(&state.config.data_dir) else {
        return Ok(());
    };
    let floor = state.config.min_free_disk.bytes(total);
    if available.saturating_sub(declared.unwrap_or(0)) < floor {
        tracing::warn!(available, floor, "upload refused: the disk is nearly full");
        return Err(Error::Api {
            code: ErrorCode::Unavailable,
            message: "the server is low on disk space; uploads are paused".into(),
            field: None,
            retry_after: Some(60),
        });
    }
    Ok(())
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::new(ErrorCode::TooLarge, "file is too large")
    } else {
        Error::bad_request(format!("invalid multipart body: {}", e.body_text()))
    }
}

/// Sets the media cookie (a read-only media token) for `<img>` and `<video>` elements.
#[utoipa::path(post, path = "/api/v1/media/cookie", tag = "media",
    responses((status = 204, description = "Cookie set"), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn cookie(State(state): State<SharedState>, auth: AuthUser) -> Result<Response> {
    let ttl = state.auth.access_ttl();
    let token = state
        .auth
        .issue_media(auth.user_id.as_str(), auth.session_id.as_str())?;
    let value =
        format!("{COOKIE}={token}; Path=/api/v1/media; Max-Age={ttl}; HttpOnly; SameSite=Strict");
    let mut resp = no_content();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&value).map_err(|e| Error::Internal(e.into()))?,
    );
    Ok(resp)
}

/// Who is asking: a bearer token, the media cookie, or nobody (avatars only).
async fn viewer(state: &SharedState, headers: &HeaderMap) -> Option<UserId> {
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return super::authenticate(&state.auth, &*state.store, token.trim())
            .await
            .ok()
            .map(|a| a.user_id);
    }
    let cookies = headers.get_all(header::COOKIE);
    for v in cookies.iter().filter_map(|v| v.to_str().ok()) {
        for pair in v.split(';') {
            if let Some(token) = pair.trim().strip_prefix(&format!("{COOKIE}=")) {
                let id = state.auth.verify_media(token).ok()?;
                // The token's signature vouches for the IDs in it.
                let user = UserId::trusted(id.user_id);
                let session = SessionId::trusted(id.session_id);
                if state.store.session_active(&session, &user).await.ok()? {
                    return Some(user);
                }
            }
        }
    }
    None
}

#[utoipa::path(get, path = "/api/v1/media/{id}", tag = "media",
    params(("id" = String, Path)),
    responses((status = 200, description = "The file"), (status = 206, description = "A byte range"),
              (status = 304, description = "Not modified"), (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = []), ("media_cookie" = [])))]
pub(crate) async fn original(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    serve(&state, &id, &headers, false).await
}

#[utoipa::path(get, path = "/api/v1/media/{id}/thumbnail", tag = "media",
    params(("id" = String, Path)),
    responses((status = 200, description = "A thumbnail (about 320 px)"), (status = 304, description = "Not modified"),
              (status = "4XX", description = "Error", body = p::ErrorBody)),
    security(("bearer" = []), ("media_cookie" = [])))]
pub(crate) async fn thumbnail(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    serve(&state, &id, &headers, true).await
}

async fn serve(
    state: &SharedState,
    id: &str,
    headers: &HeaderMap,
    thumb: bool,
) -> Result<Response> {
    let id = MediaId::parse(id, "media")?;
    let who = viewer(state, headers).await;
    // Anyone without access gets the same 404 as for a missing file.
    let m: MediaRecord = state
        .store
        .media_for(who.as_ref(), &id)
        .await?
        .ok_or_else(|| Error::not_found("media"))?;
    let (key, mime, size, sha) = if thumb {
        match (&m.thumb_key, &m.thumb_mime, m.thumb_size, &m.thumb_sha256) {
            (Some(k), Some(mime), Some(size), Some(sha)) => {
                (k.clone(), mime.clone(), size as u64, sha.clone())
            }
            _ => return Err(Error::not_found("thumbnail")),
        }
    } else {
        (
            m.storage_key.clone(),
            m.mime.clone(),
            m.size as u64,
            m.sha256.clone(),
        )
    };
    let etag = format!("\"{sha}\"");
    let cache = if m.avatar {
        "public, max-age=31536000, immutable"
    } else {
        "private, max-age=31536000, immutable"
    };
    let mut common = HeaderMap::new();
    // Only images, videos and voice messages are shown by the browser; everything else
    // (documents, text, unknown bytes) is a download.
    let inline = thumb || matches!(m.kind.as_str(), "image" | "video" | "audio");
    let content_type = if mime == "text/plain" {
        "text/plain; charset=utf-8".to_owned()
    } else {
        mime
    };
    let hv = |s: &str| HeaderValue::from_str(s).map_err(|e| Error::Internal(e.into()));
    common.insert(header::CONTENT_TYPE, hv(&content_type)?);
    common.insert(header::ETAG, hv(&etag)?);
    common.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    common.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    common.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    common.insert(
        header::CONTENT_DISPOSITION,
        hv(&disposition(inline, &m.name))?,
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(r) => match parse_range(r, size) {
            Ok(r) => r,
            Err(()) => {
                common.insert(header::CONTENT_RANGE, hv(&format!("bytes */{size}"))?);
                return Ok((StatusCode::RANGE_NOT_SATISFIABLE, common).into_response());
            }
        },
    };
    let read = state
        .media
        .blobs
        .read(&key, range)
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        read.body,
        64 * 1024,
    ));
    let (status, len) = match range {
        Some((a, b)) => {
            common.insert(
                header::CONTENT_RANGE,
                hv(&format!("bytes {a}-{b}/{}", read.total))?,
            );
            (StatusCode::PARTIAL_CONTENT, b - a + 1)
        }
        None => (StatusCode::OK, read.total),
    };
    common.insert(header::CONTENT_LENGTH, hv(&len.to_string())?);
    Ok((status, common, body).into_response())
}

fn disposition(inline: bool, name: &str) -> String {
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename*=UTF-8''{encoded}")
}

/// One `bytes=a-b`, `bytes=a-` or `bytes=-n` range. `Ok(None)` means "ignore the header"
/// (several ranges, or another unit); `Err` means unsatisfiable (416).
fn parse_range(v: &str, size: u64) -> std::result::Result<Option<(u64, u64)>, ()> {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    if size == 0 {
        return Err(());
    }
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end: u64 = if b.is_empty() {
            size - 1
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(size - 1)
        };
        if start > end || start >= size {
            return Err(());
        }
        (start, end)
    };
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=95-200", 100), Ok(Some((95, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-1", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
    }

    #[test]
    fn dispositions_encode_names() {
        assert_eq!(
            disposition(false, "a b\".pdf"),
            "attachment; filename*=UTF-8''a%20b%22.pdf"
        );
        assert_eq!(disposition(true, "x.png"), "inline; filename*=UTF-8''x.png");
    }
}
