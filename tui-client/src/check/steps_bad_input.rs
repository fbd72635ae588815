//! Bad-input steps of `chat-tui check`: malformed REST and WebSocket requests are refused.

use std::time::Duration;

use chat_client::{PageQuery, Socket, Upload};
use chat_protocol::error::ErrorCode;
use chat_protocol::ws::{ClientEvent, ServerEvent};
use chat_protocol::ConversationId;
use reqwest::Method;

use super::{ensure, raw, refused, ws_err, Chat, Check, Sent, Step};

/// Malformed, oversized, unauthorised and foreign requests are refused; bad frames keep the socket.
pub(super) async fn bad_input(c: &mut Check<'_>, chat: &mut Chat, sent: &Sent) {
    let (alice, carol, wait, conv, first) = (c.alice, c.carol, c.wait, chat.conv, &sent.first);
    let r = &mut *c.r;
    let a_ws = &mut chat.a_ws;
    let msgs = format!("/conversations/{conv}/messages");
    r.step("bad: malformed JSON → 400 invalid_json", async {
        refused(
            raw(&alice.api, Method::POST, &msgs, "{\"content\":").await,
            400,
            ErrorCode::InvalidJson,
        )
    })
    .await;
    r.step("bad: wrong type → 400", async {
        match raw(&alice.api, Method::POST, &msgs, "{\"content\":5}").await {
            Err(e) if e.status() == Some(400) && e.code().is_some() => Ok(()),
            other => Err(format!("expected 400 with a SPEC code, got {other:?}")),
        }
    })
    .await;
    r.step("bad: empty content → 400 validation_failed", async {
        refused(
            alice.api.send_text(conv, "   ", None).await,
            400,
            ErrorCode::ValidationFailed,
        )
    })
    .await;
    r.step("bad: 4001 characters → 400 validation_failed", async {
        refused(
            alice.api.send_text(conv, &"x".repeat(4001), None).await,
            400,
            ErrorCode::ValidationFailed,
        )
    })
    .await;
    r.step("bad: SVG upload → 415 unsupported_media_type", async {
        refused(
            alice
                .api
                .send_media(
                    conv,
                    vec![Upload {
                        name: "x.png".into(),
                        content_type: "image/png".into(),
                        bytes: br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#
                            .to_vec(),
                    }],
                    None,
                    None,
                )
                .await,
            415,
            ErrorCode::UnsupportedMediaType,
        )
    })
    .await;
    r.step("bad: garbage cursor → 400 invalid_cursor", async {
        refused(
            alice
                .api
                .messages(conv, &PageQuery::before("!!!", 10))
                .await,
            400,
            ErrorCode::InvalidCursor,
        )
    })
    .await;
    r.step("bad: invalid token → 401 unauthorized", async {
        refused(
            alice
                .api
                .with_token("x.y.z")
                .conversations(&PageQuery::default())
                .await,
            401,
            ErrorCode::Unauthorized,
        )
    })
    .await;
    r.step("bad: someone else's conversation → 404", async {
        refused(
            carol.api.messages(conv, &PageQuery::default()).await,
            404,
            ErrorCode::NotFound,
        )?;
        refused(
            carol.api.send_text(conv, "hi", None).await,
            404,
            ErrorCode::NotFound,
        )?;
        refused(carol.api.message(first.id).await, 404, ErrorCode::NotFound)
    })
    .await;
    r.step(
        "bad: WS frame that is not JSON → error, socket stays",
        async {
            a_ws.send_raw("this is not json".into())
                .await
                .map_err(ws_err)?;
            a_ws.wait_for(wait, |e| {
                matches!(e, ServerEvent::Error { .. }).then_some(())
            })
            .await
            .map_err(ws_err)?;
            a_ws.send(&ClientEvent::Ping {}).await.map_err(ws_err)?;
            a_ws.wait_for(wait, |e| matches!(e, ServerEvent::Pong {}).then_some(()))
                .await
                .map_err(ws_err)
        },
    )
    .await;
    r.step("bad: WS unknown type → error unknown_type", async {
        a_ws.send_raw(r#"{"type":"message.explode","data":{}}"#.into())
            .await
            .map_err(ws_err)?;
        let code = a_ws
            .wait_for(wait, |e| match e {
                ServerEvent::Error { code, .. } => Some(*code),
                _ => None,
            })
            .await
            .map_err(ws_err)?;
        ensure(code == ErrorCode::UnknownType, || format!("code {code}"))
    })
    .await;
    r.step(
        "bad: WS send to someone else's conversation → error",
        async {
            let other = ConversationId::new();
            stranger_send(a_ws, other, wait).await
        },
    )
    .await;
}

/// A send into a conversation that is not the sender's gets an `error` event (404 code).
async fn stranger_send(ws: &mut Socket, conv: ConversationId, wait: Duration) -> Step<()> {
    ws.send(&ClientEvent::MessageSend {
        conversation_id: conv,
        content: "hi".into(),
        temp_id: Some("chk-stranger".into()),
        reply_to_id: None,
    })
    .await
    .map_err(ws_err)?;
    let code = ws
        .wait_for(wait, |e| match e {
            ServerEvent::Error { code, temp_id, .. }
                if temp_id.as_deref() == Some("chk-stranger") =>
            {
                Some(*code)
            }
            _ => None,
        })
        .await
        .map_err(ws_err)?;
    ensure(code == ErrorCode::NotFound, || format!("code {code}"))
}
