//! The one error body every endpoint returns: `{"error":{"code","message"}}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Machine-readable error codes. Serialised as snake_case strings; clients match on
/// these, never on the human message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Missing, malformed, expired or forged token.
    Unauthorized,
    /// The caller may not do this (not covered by a more precise code).
    Forbidden,
    /// Either side of a block stops this action.
    Blocked,
    /// Unknown route, or a resource that does not exist or the caller does not take part in.
    NotFound,
    /// The HTTP method is not served on this route.
    MethodNotAllowed,
    /// Body is not valid JSON or does not match the expected shape.
    InvalidJson,
    /// A field's value breaks a rule (length, characters, range).
    ValidationFailed,
    /// A path or query parameter is not a valid id.
    InvalidId,
    /// A pagination cursor could not be decoded.
    InvalidCursor,
    /// `limit` (or another numeric query parameter) is out of range.
    InvalidLimit,
    /// A query string could not be parsed.
    InvalidQuery,
    /// A WebSocket frame whose `type` is not a known client event.
    UnknownType,
    /// Acting on oneself where that makes no sense (chatting with or blocking yourself).
    SelfAction,
    /// The request conflicts with stored state (e.g. a reused `temp_id`).
    Conflict,
    /// Body larger than the endpoint accepts.
    PayloadTooLarge,
    /// Content type (declared or sniffed) not accepted here.
    UnsupportedMediaType,
    /// Per-user rate limit hit; see `Retry-After`.
    RateLimited,
    /// A dependency (database, Redis) is unreachable; retry later.
    ServiceUnavailable,
    /// Unexpected server fault. Details are in the server log, never in the body.
    Internal,
}

impl ErrorCode {
    /// The snake_case string that goes on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Blocked => "blocked",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::InvalidId => "invalid_id",
            ErrorCode::InvalidCursor => "invalid_cursor",
            ErrorCode::InvalidLimit => "invalid_limit",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::SelfAction => "self_action",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ServiceUnavailable => "service_unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"error": {...}}`: the body of every error answer, whatever the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people; never contains internal details (SQL, stack traces).
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_their_wire_string() {
        for code in [
            ErrorCode::Unauthorized,
            ErrorCode::Blocked,
            ErrorCode::InvalidCursor,
            ErrorCode::RateLimited,
            ErrorCode::PayloadTooLarge,
            ErrorCode::MethodNotAllowed,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn error_body_has_the_spec_shape() {
        let body = ErrorBody::new(ErrorCode::NotFound, "no such conversation");
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["error"]["code"], "not_found");
        assert_eq!(v["error"]["message"], "no such conversation");
    }
}
