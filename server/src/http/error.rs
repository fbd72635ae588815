//! The one mapping from the domain [`Error`] to an HTTP status and the SPEC error body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat_protocol::{ErrorBody, ErrorCode};

use crate::error::{retry_after_secs, Error};

/// The status of a domain error.
pub fn status_of(e: &Error) -> StatusCode {
    status_for(e.code())
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

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = status_of(&self);
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
    use std::time::Duration;

    use super::*;

    #[test]
    fn internal_is_a_500() {
        let e = Error::Internal("syntax error at or near SELECT".into());
        assert_eq!(status_of(&e), StatusCode::INTERNAL_SERVER_ERROR);
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
