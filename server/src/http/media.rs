//! `GET /media/{key}?exp=&sig=`: local media, for signed links only. Served as a download
//! that no browser will sniff or run, with Range support (video seeking) from tower-http.

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::error::{Error, Result};
use crate::http::AppState;
use chat_protocol::ErrorBody;

use crate::http::extract::{ApiPath, ApiQuery};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedQuery {
    /// Expiry, Unix seconds.
    #[param(value_type = u64, required = false)]
    exp: Option<u64>,
    /// HMAC-SHA256 signature of the key and `exp` (base64url).
    #[param(value_type = String, required = false)]
    sig: Option<String>,
}

/// A local media object, through the signed URL of a media item (`url`,
/// `thumbnail_url`). No bearer token: the signature is the credential. Served as an
/// attachment with `X-Content-Type-Options: nosniff`, with Range support.
#[utoipa::path(
    get,
    path = "/media/{key}",
    operation_id = "get_media",
    tag = "media",
    params(("key" = String, Path, description = "Object key"), SignedQuery),
    responses(
        (status = 200, description = "The object", content(("*/*"))),
        (status = 206, description = "The requested range of the object", content(("*/*"))),
        (status = 304, description = "Not modified since `If-Modified-Since`"),
        (status = 400, description = "`invalid_query` or `invalid_id`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the link is unsigned, altered or expired", body = ErrorBody),
        (status = 404, description = "`not_found`: no such object, or media is not stored locally", body = ErrorBody),
        (status = 416, description = "The requested range is not satisfiable", body = ErrorBody),
    )
)]
pub async fn serve(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
    ApiQuery(q): ApiQuery<SignedQuery>,
    req: Request,
) -> Result<Response> {
    let local = state
        .service
        .media()
        .and_then(|m| m.local().cloned())
        .ok_or(Error::NotFound("media"))?;
    let path = local.path_of(&key).ok_or(Error::NotFound("media"))?;
    let (Some(exp), Some(sig)) = (q.exp, q.sig) else {
        return Err(Error::Forbidden("this link is not signed".into()));
    };
    local
        .verify(&key, exp, &sig)
        .map_err(|m| Error::Forbidden(m.into()))?;
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Err(Error::NotFound("media"));
    }
    let mut resp = ServeFile::new(&path)
        .oneshot(req)
        .await
        .map_err(|e| Error::Internal(format!("serving media: {e}")))?
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600, immutable"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-site"),
    );
    Ok(resp)
}
