//! Blocking steps of `chat-tui check`: block and unblock over WebSocket and REST.

use chat_client::PageQuery;
use chat_protocol::error::ErrorCode;
use chat_protocol::ws::{ClientEvent, ServerEvent};

use super::{describe, ensure, refused, ws_err, Chat, Check};

/// Blocking over WS and REST: sends refused while blocked, status and list agree, unblock restores.
pub(super) async fn blocking(c: &mut Check<'_>, chat: &mut Chat) {
    let (alice, bob, carol, wait, conv) = (c.alice, c.bob, c.carol, c.wait, chat.conv);
    let r = &mut *c.r;
    let a_ws = &mut chat.a_ws;
    r.step("WS block.add → block.updated", async {
        a_ws.send(&ClientEvent::BlockAdd {
            username: bob.name.clone(),
        })
        .await
        .map_err(ws_err)?;
        a_ws.wait_for(wait, |e| match e {
            ServerEvent::BlockUpdated { username, blocked } if *username == bob.name => {
                Some(*blocked)
            }
            _ => None,
        })
        .await
        .map_err(ws_err)?
        .then_some(())
        .ok_or_else(|| "blocked: false".into())
    })
    .await;
    r.step("  send while blocked → 403 blocked", async {
        refused(
            bob.api.send_text(conv, "hello?", None).await,
            403,
            ErrorCode::Blocked,
        )
    })
    .await;
    r.step("  WS send while blocked → error blocked", async {
        a_ws.send(&ClientEvent::MessageSend {
            conversation_id: conv,
            content: "no".into(),
            temp_id: Some("chk-blocked".into()),
            reply_to_id: None,
        })
        .await
        .map_err(ws_err)?;
        let code = a_ws
            .wait_for(wait, |e| match e {
                ServerEvent::Error { code, temp_id, .. }
                    if temp_id.as_deref() == Some("chk-blocked") =>
                {
                    Some(*code)
                }
                _ => None,
            })
            .await
            .map_err(ws_err)?;
        ensure(code == ErrorCode::Blocked, || format!("code {code}"))
    })
    .await;
    r.step("GET /chat/blocks/status/:username", async {
        let s = bob.api.block_status(&alice.name).await.map_err(describe)?;
        ensure(s.blocked_me && !s.blocked_by_me, || format!("{s:?}"))
    })
    .await;
    r.step("GET /chat/blocks", async {
        let p = alice
            .api
            .blocks(&PageQuery::default())
            .await
            .map_err(describe)?;
        ensure(p.data.iter().any(|b| b.user_id == bob.id), || {
            "bob not listed".into()
        })
    })
    .await;
    r.step("WS block.remove → block.updated", async {
        a_ws.send(&ClientEvent::BlockRemove {
            username: bob.name.clone(),
        })
        .await
        .map_err(ws_err)?;
        let blocked = a_ws
            .wait_for(wait, |e| match e {
                ServerEvent::BlockUpdated { username, blocked } if *username == bob.name => {
                    Some(*blocked)
                }
                _ => None,
            })
            .await
            .map_err(ws_err)?;
        ensure(!blocked, || "blocked: true".into())
    })
    .await;
    r.step("POST /chat/blocks", async {
        let c = alice.api.block(&carol.name).await.map_err(describe)?;
        ensure(c.blocked, || "not blocked".into())
    })
    .await;
    r.step("DELETE /chat/blocks/:username", async {
        let c = alice.api.unblock(&carol.name).await.map_err(describe)?;
        ensure(!c.blocked, || "still blocked".into())?;
        let s = carol
            .api
            .block_status(&alice.name)
            .await
            .map_err(describe)?;
        ensure(!s.blocked_me, || "carol still blocked".into())
    })
    .await;
}
