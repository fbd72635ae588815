//! The OpenAPI 3.1 document of chatd, generated from the handlers' `#[utoipa::path]`
//! annotations and the wire types' `ToSchema` derives, served at `GET /openapi.json`.
//!
//! Errors every authenticated operation can answer (401, 409 for a token whose username
//! belongs to another user, 503) and the 500 every operation can answer are added by
//! [`CommonResponses`], so each handler lists only its own; `Retry-After` is attached to
//! every 429 there too. The tests below fail when a route of [`super::router`] is not
//! documented, or a documented operation is not routed.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use chat_protocol::ErrorBody;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{blocks, conversations, health, lifecycle, media, messages, push};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chatd",
        description = "Real-time 1:1 chat: REST API. Events travel over the WebSocket at \
                       `/chat/ws` (frames are described in the project's SPEC, not here). \
                       Every error answers `{\"error\":{\"code\",\"message\"}}`; clients match \
                       on `code`.",
        license(name = "MIT")
    ),
    paths(
        conversations::list,
        conversations::unread_count,
        conversations::with_user,
        messages::list,
        messages::send,
        messages::mark_read,
        messages::media,
        messages::links,
        messages::files,
        messages::get,
        messages::context,
        lifecycle::edit,
        lifecycle::delete,
        lifecycle::react,
        lifecycle::unreact,
        lifecycle::search,
        blocks::add,
        blocks::list,
        blocks::remove,
        blocks::status,
        push::add,
        push::list,
        push::remove,
        push::vapid_public_key,
        websocket,
        media::serve,
        health::healthz,
        health::readyz,
        health::metrics,
        serve,
    ),
    components(schemas(ErrorBody)),
    modifiers(&CommonResponses),
    tags(
        (name = "conversations", description = "1:1 conversations and unread counts"),
        (name = "messages", description = "History, sending (text and media), read marks, galleries, edits, deletes, reactions"),
        (name = "blocks", description = "Blocking users"),
        (name = "push", description = "Push notification targets"),
        (name = "realtime", description = "The WebSocket"),
        (name = "media", description = "Locally stored media objects"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Security schemes, the errors shared by every (authenticated) operation, the
/// `Retry-After` header of every 429, and request bodies that may be left out.
struct CommonResponses;

/// Operations whose JSON body is optional (`#[utoipa::path]` has no way to say so without
/// also making the schema nullable, and `null` is not accepted).
const OPTIONAL_BODIES: [&str; 1] = ["mark_read"];

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

fn operations_mut(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "HS256 JWT (or RS256/EdDSA when configured) with `sub` (user UUID), \
                         `username` and `exp`; the user is created on first sight",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "query_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "The same JWT as the `token` query parameter (WebSocket upgrade only)",
            ))),
        );
        for item in openapi.paths.paths.values_mut() {
            for op in operations_mut(item) {
                if let (Some(id), Some(body)) = (&op.operation_id, op.request_body.as_mut()) {
                    if OPTIONAL_BODIES.contains(&id.as_str()) {
                        body.required = Some(utoipa::openapi::Required::False);
                    }
                }
                let authenticated = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let responses = &mut op.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| error_response(description));
                };
                if authenticated {
                    add(
                        "401",
                        "`unauthorized`: missing, malformed, expired or forged token, or an \
                         erased account",
                    );
                    add(
                        "409",
                        "`conflict`: the token's username belongs to another user",
                    );
                    add(
                        "503",
                        "`service_unavailable`: the database (or Redis) is unreachable; retry",
                    );
                }
                add(
                    "500",
                    "`internal`: unexpected server fault (details only in the server log)",
                );
                if let Some(RefOr::T(resp)) = responses.get_mut("429") {
                    resp.headers.insert(
                        "Retry-After".to_string(),
                        HeaderBuilder::new()
                            .schema(
                                utoipa::openapi::ObjectBuilder::new()
                                    .schema_type(utoipa::openapi::schema::Type::Integer)
                                    .minimum(Some(1)),
                            )
                            .description(Some("Seconds until a retry can succeed"))
                            .build(),
                    );
                }
            }
        }
    }
}

// Documentation of `GET /chat/ws`, whose handler is `crate::http::ws::upgrade`.
#[utoipa::path(
    get,
    path = "/chat/ws",
    operation_id = "websocket",
    tag = "realtime",
    summary = "Open the WebSocket",
    description = "Upgrade to the WebSocket that carries real-time events (frames are JSON \
                   `{\"type\", \"data\"}`, described in the SPEC, not here). The token goes in \
                   `Authorization: Bearer` or, for clients that cannot set headers, in `?token=`; \
                   the header wins when both are sent.",
    params(
        ("since" = Option<u64>, Query, minimum = 0, description = "Resume: the `seq` of the last logged event this client saw; the events logged after it are replayed before live ones, then `sync.complete`"),
    ),
    responses(
        (status = 101, description = "Switching protocols: the WebSocket is open; the first frame is `connection.success`"),
        (status = 400, description = "`validation_failed` (not a WebSocket upgrade request) or `invalid_query` (`since` is not an unsigned integer)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the user already holds `CHAT_WS_MAX_SOCKETS_PER_USER` sockets on this instance", body = ErrorBody),
    ),
    security(("bearer" = []), ("query_token" = []))
)]
#[allow(dead_code)]
fn websocket() {}

/// The document, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

/// This document (OpenAPI 3.1, JSON).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this server", body = Object),
    )
)]
pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    fn doc() -> Value {
        serde_json::from_str(document()).unwrap()
    }

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    /// (METHOD, path) of every documented operation.
    fn documented(doc: &Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, _) in item.as_object().unwrap() {
                if METHODS.contains(&method.as_str()) {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    /// (METHOD, path) of every route registered in `router()`, read from its source: a
    /// `.route(...)` added there without a `#[utoipa::path]` listed in [`ApiDoc`] fails
    /// `every_route_is_documented`.
    fn routed() -> BTreeSet<(String, String)> {
        let src = include_str!("mod.rs");
        let start = src.find("pub fn router(").expect("router() in http/mod.rs");
        let end = start
            + src[start..]
                .find(".fallback(")
                .expect("router() has a fallback");
        // Drop line comments so that words in them are not taken for methods.
        let body: String = src[start..end]
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        // Routes before `.nest("/chat", chat)` belong to the `chat` router.
        let (chat, outer) = body
            .split_once("Router::new()\n")
            .and_then(|(_, rest)| rest.split_once("Router::new()"))
            .expect("a chat router and an outer router");
        assert!(
            outer.contains(".nest(\"/chat\", chat)"),
            "chat is nested under /chat"
        );
        let mut out = BTreeSet::new();
        for (prefix, part) in [("/chat", chat), ("", outer)] {
            for call in part.split(".route(").skip(1) {
                let path = call
                    .trim_start()
                    .strip_prefix('"')
                    .and_then(|s| s.split_once('"'))
                    .map(|(p, _)| p)
                    .unwrap_or_else(|| panic!("a literal path in .route({call}"));
                let mut found = false;
                for m in ["get", "post", "put", "delete", "patch"] {
                    let bare = format!("{m}(");
                    let chained = format!(".{m}(");
                    let rest = call.split_once(',').map(|(_, r)| r).unwrap_or("");
                    if rest.trim_start().starts_with(&bare) || rest.contains(&chained) {
                        out.insert((m.to_uppercase(), format!("{prefix}{path}")));
                        found = true;
                    }
                }
                assert!(found, "no method found for route {path}");
            }
        }
        out
    }

    #[test]
    fn document_is_openapi_3_1() {
        let d = doc();
        assert_eq!(d["openapi"], "3.1.0");
        assert_eq!(d["info"]["title"], "chatd");
        assert!(d["components"]["securitySchemes"]["bearer"].is_object());
    }

    #[test]
    fn every_route_is_documented() {
        let routed = routed();
        let documented = documented(&doc());
        // Sanity: the source scan sees the routes it should.
        assert!(routed.contains(&("GET".into(), "/chat/conversations".into())));
        assert!(routed.contains(&("POST".into(), "/chat/conversations/{id}/messages".into())));
        assert!(routed.contains(&("GET".into(), "/openapi.json".into())));
        let missing: Vec<_> = routed.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "routes without documentation: {missing:?}; documented but not routed: {extra:?}"
        );
    }

    #[test]
    fn operation_ids_are_unique_and_every_error_is_an_error_body() {
        let d = doc();
        let mut ids = BTreeSet::new();
        for (path, item) in d["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_string();
                assert!(ids.insert(id.clone()), "duplicate operationId {id}");
                let responses = op["responses"].as_object().unwrap();
                assert!(responses.contains_key("500"), "{method} {path}: no 500");
                let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
                assert_eq!(
                    responses.contains_key("401"),
                    secured,
                    "{method} {path}: 401 iff authenticated"
                );
                if secured {
                    assert!(responses.contains_key("503"), "{method} {path}: no 503");
                }
                for (status, resp) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        // /readyz answers its 503 with the readiness body.
                        if path == "/readyz" && status == "503" {
                            continue;
                        }
                        assert_eq!(
                            resp["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{method} {path} {status} is not an ErrorBody"
                        );
                    }
                }
                if let Some(r) = responses.get("429") {
                    assert!(r["headers"]["Retry-After"].is_object(), "{method} {path}");
                }
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(v: &Value, d: &Value, at: &str) {
            match v {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        let ptr = r.strip_prefix('#').expect("local reference");
                        assert!(d.pointer(ptr).is_some(), "dangling {r} at {at}");
                    }
                    for (k, v) in map {
                        walk(v, d, &format!("{at}/{k}"));
                    }
                }
                Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        walk(v, d, &format!("{at}/{i}"));
                    }
                }
                _ => {}
            }
        }
        let d = doc();
        walk(&d, &d, "");
    }

    #[test]
    fn schemas_describe_what_serde_sends() {
        let d = doc();
        let s = &d["components"]["schemas"];
        // Ids are UUID strings.
        assert_eq!(s["ConversationId"]["type"], "string");
        assert_eq!(s["ConversationId"]["format"], "uuid");
        // Options that are always serialised are required (and nullable).
        let message_required = s["Message"]["required"].as_array().unwrap();
        for field in ["content", "temp_id", "read_at", "type", "media"] {
            assert!(
                message_required.contains(&Value::from(field)),
                "Message.{field} must be required"
            );
        }
        // Options skipped when None are optional.
        let send_required = s["SendMessageRequest"]["required"].as_array().unwrap();
        assert_eq!(send_required, &vec![Value::from("content")]);
        // Every error code is listed.
        let codes = s["ErrorCode"]["enum"].as_array().unwrap();
        assert!(codes.contains(&Value::from("rate_limited")));
        assert!(codes.contains(&Value::from("invalid_json")));
    }

    /// Every documented operation reaches a handler: not the fallback's 404 and not 405.
    #[tokio::test]
    async fn every_documented_operation_is_routed() {
        let dir = std::env::temp_dir().join(format!("chatd-openapi-{}", uuid::Uuid::new_v4()));
        let config = crate::Config::for_data_dir(&dir);
        let (state, tasks) = crate::app::build_state(&config).await.expect("state");
        let app = super::super::router(state);
        for (method, path) in documented(&doc()) {
            let uri = path
                .replace("{id}", &uuid::Uuid::nil().to_string())
                .replace("{username}", "nobody")
                .replace("{key}", "nokey");
            let req = Request::builder()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            let body = String::from_utf8_lossy(&body);
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            assert!(
                !(status == StatusCode::NOT_FOUND && body.contains("route not found")),
                "{method} {uri} is not routed"
            );
        }
        for t in tasks {
            t.abort();
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
