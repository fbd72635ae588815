//! The one domain error type and its one mapping to HTTP status + SPEC error body.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat_protocol::{ErrorBody, ErrorCode};

use crate::store::StoreError;

/// Everything that can go wrong in a request, from bad input to a lost database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Blocked(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    InvalidId(String),
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("{0}")]
    InvalidLimit(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("{0}")]
    SelfAction(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("rate limit exceeded; retry in {}s", retry_after_secs(*.retry_after))]
    RateLimited { retry_after: Duration },
    /// A standing cap (sockets per user, push subscriptions, …) is reached: retrying soon
    /// will not help until something is released.
    #[error("{0}")]
    Capped(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

fn retry_after_secs(d: Duration) -> u64 {
    // Round up: telling a client "0" invites it to retry at once and be refused again.
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::Blocked(_) => ErrorCode::Blocked,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Error::InvalidJson(_) => ErrorCode::InvalidJson,
            Error::Validation(_) => ErrorCode::ValidationFailed,
            Error::InvalidId(_) => ErrorCode::InvalidId,
            Error::InvalidCursor => ErrorCode::InvalidCursor,
            Error::InvalidLimit(_) => ErrorCode::InvalidLimit,
            Error::InvalidQuery(_) => ErrorCode::InvalidQuery,
            Error::SelfAction(_) => ErrorCode::SelfAction,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Error::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            Error::RateLimited { .. } | Error::Capped(_) => ErrorCode::RateLimited,
            Error::Unavailable(_) => ErrorCode::ServiceUnavailable,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        status_for(self.code())
    }

    /// The message a client sees. Internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => "internal server error".to_string(),
            Error::Unavailable(_) => "a backing service is unavailable; retry shortly".to_string(),
            other => other.to_string(),
        }
    }
}

/// The single code → status table.
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden | ErrorCode::Blocked => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::InvalidJson
        | ErrorCode::ValidationFailed
        | ErrorCode::InvalidId
        | ErrorCode::InvalidCursor
        | ErrorCode::InvalidLimit
        | ErrorCode::InvalidQuery
        | ErrorCode::UnknownType
        | ErrorCode::SelfAction => StatusCode::BAD_REQUEST,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<crate::model::InvalidCursor> for Error {
    fn from(_: crate::model::InvalidCursor) -> Self {
        Error::InvalidCursor
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Error::NotFound("resource"),
            StoreError::Erased => Error::Unauthorized("this account has been erased".into()),
            StoreError::Conflict(msg) => Error::Conflict(msg),
            StoreError::Blocked => {
                Error::Blocked("a block stands between you and this user".into())
            }
            StoreError::Unavailable(msg) => Error::Unavailable(msg),
            StoreError::Other(msg) => Error::Internal(msg),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Error::Internal(detail) => tracing::error!(error = %detail, "internal error"),
            Error::Unavailable(detail) => tracing::warn!(error = %detail, "dependency unavailable"),
            _ => tracing::debug!(code = %self.code(), "request refused: {self}"),
        }
        let body = ErrorBody::new(self.code(), self.public_message());
        let mut resp = (status, Json(body)).into_response();
        if let Error::RateLimited { retry_after } = &self {
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs(*retry_after).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(7)), 7);
    }

    #[test]
    fn internal_details_never_reach_the_body() {
        let e = Error::Internal("syntax error at or near SELECT".into());
        assert_eq!(e.public_message(), "internal server error");
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn rate_limited_sets_retry_after() {
        let resp = Error::RateLimited {
            retry_after: Duration::from_millis(2100),
        }
        .into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "3");
    }
}
