//! The one domain error type: what a rule, a store call or an input can refuse with,
//! as a SPEC error code and the message a client may read. No HTTP here: its one mapping
//! to a status and a body is `http::error`.

use std::time::Duration;

use chat_protocol::ErrorCode;

use crate::model::InvalidInput;
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

/// Whole seconds to tell a client to wait.
pub fn retry_after_secs(d: Duration) -> u64 {
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

    /// The message a client sees. Internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => "internal server error".to_string(),
            Error::Unavailable(_) => "a backing service is unavailable; retry shortly".to_string(),
            other => other.to_string(),
        }
    }
}

impl From<crate::model::InvalidCursor> for Error {
    fn from(_: crate::model::InvalidCursor) -> Self {
        Error::InvalidCursor
    }
}

impl From<InvalidInput> for Error {
    fn from(e: InvalidInput) -> Self {
        match e {
            InvalidInput::Field(msg) => Error::Validation(msg),
            InvalidInput::Limit(msg) => Error::InvalidLimit(msg),
        }
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
    fn internal_details_never_reach_the_message() {
        let e = Error::Internal("syntax error at or near SELECT".into());
        assert_eq!(e.public_message(), "internal server error");
        assert_eq!(e.code(), ErrorCode::Internal);
    }

    #[test]
    fn invalid_input_keeps_its_code_and_message() {
        let e = Error::from(InvalidInput::Limit(
            "limit must be an integer from 1 to 100".into(),
        ));
        assert_eq!(e.code(), ErrorCode::InvalidLimit);
        assert_eq!(e.public_message(), "limit must be an integer from 1 to 100");
        let e = Error::from(InvalidInput::Field("content must not be empty".into()));
        assert_eq!(e.code(), ErrorCode::ValidationFailed);
    }
}
