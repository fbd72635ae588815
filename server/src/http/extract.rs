//! Extractors whose rejections speak the SPEC error format instead of axum's plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::auth::AuthUser;
use crate::error::Error;
use crate::http::AppState;
use crate::model::{Cursor, Limit};

/// JSON body; bad syntax, wrong types, missing fields, wrong content type and oversize
/// bodies each map to their own error code.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

pub fn json_rejection(rej: JsonRejection) -> Error {
    match rej {
        JsonRejection::MissingJsonContentType(_) => {
            Error::UnsupportedMediaType("expected Content-Type: application/json".into())
        }
        JsonRejection::JsonSyntaxError(e) => {
            Error::InvalidJson(format!("malformed JSON: {}", e.body_text()))
        }
        JsonRejection::JsonDataError(e) => {
            Error::InvalidJson(format!("wrong JSON shape: {}", e.body_text()))
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Error::PayloadTooLarge("request body is too large".into())
        }
        other => Error::InvalidJson(other.body_text()),
    }
}

/// Decode a JSON body from bytes already read (for endpoints whose body is optional).
pub fn json_from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            Error::InvalidJson(format!("wrong JSON shape: {e}"))
        } else {
            Error::InvalidJson(format!("malformed JSON: {e}"))
        }
    })
}

/// Path parameters; an id that is not a UUID is `invalid_id`.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(Error::InvalidId(format!(
                "invalid path parameter: {}",
                e.body_text()
            ))),
            Err(other) => Err(Error::Internal(other.body_text())),
        }
    }
}

/// Query string; values stay strings so each has its own precise error.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(Error::InvalidQuery(e.body_text()))
            }
            Err(other) => Err(Error::InvalidQuery(other.body_text())),
        }
    }
}

/// `?before=&after=&limit=` of every list endpoint.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Cursor (a `next_cursor` or `before_cursor`): entries older than it, newest first.
    #[param(value_type = String, required = false)]
    pub before: Option<String>,
    /// Cursor (an `after_cursor`): entries newer than it, oldest first.
    #[param(value_type = String, required = false)]
    pub after: Option<String>,
    /// Page size, 1 to 100 (default 50); out of range is `invalid_limit`, not clamped.
    #[param(value_type = u32, required = false, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

/// Query of the lists that page backwards only (`after` is refused with
/// `invalid_query`). Documentation only: those handlers read a [`PageQuery`].
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct BackwardPageQuery {
    /// Cursor (a `next_cursor`): entries older than it, newest first.
    #[param(value_type = String, required = false)]
    before: Option<String>,
    /// Page size, 1 to 100 (default 50); out of range is `invalid_limit`, not clamped.
    #[param(value_type = u32, required = false, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// Parsed page parameters.
pub struct PageParams {
    pub before: Option<Cursor>,
    pub after: Option<Cursor>,
    pub limit: u32,
}

impl PageQuery {
    pub fn parse(&self) -> Result<PageParams, Error> {
        Ok(PageParams {
            before: Cursor::decode_opt(non_empty(&self.before))?,
            after: Cursor::decode_opt(non_empty(&self.after))?,
            limit: Limit::parse(self.limit.as_deref())?.get(),
        })
    }

    /// For lists that only page backwards.
    pub fn parse_backwards(&self) -> Result<(Option<Cursor>, u32), Error> {
        if self.after.is_some() {
            return Err(Error::InvalidQuery(
                "this list pages with `before` only".into(),
            ));
        }
        let p = self.parse()?;
        Ok((p.before, p.limit))
    }
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// The bearer token of a request, if any.
pub fn bearer_from_headers(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_from_headers(&parts.headers)
            .ok_or_else(|| Error::Unauthorized("missing bearer token".into()))?;
        state.service.authenticate(&state.keys, token).await
    }
}
