//! Messaging steps of `chat-tui check`: sending, reading history, receipts, typing.

use chat_client::PageQuery;
use chat_protocol::ws::{ClientEvent, ServerEvent};

use super::{describe, ensure, new_message, ws_err, Abort, Chat, Check, Sent};

/// alice sends over WS, bob over REST; each reaches the other, a repeated temp_id is deduplicated.
pub(super) async fn send_messages(c: &mut Check<'_>, chat: &mut Chat) -> Result<Sent, Abort> {
    let (bob, wait, conv) = (c.bob, c.wait, chat.conv);
    let r = &mut *c.r;
    let Chat { a_ws, b_ws, .. } = chat;
    let first = r
        .must("WS message.send → message.sent", async {
            a_ws.send(&ClientEvent::MessageSend {
                conversation_id: conv,
                content: "hello from the check".into(),
                temp_id: Some("chk-1".into()),
                reply_to_id: None,
            })
            .await
            .map_err(ws_err)?;
            a_ws.wait_for(wait, |e| match e {
                ServerEvent::MessageSent { temp_id, message }
                    if temp_id.as_deref() == Some("chk-1") =>
                {
                    Some(message.clone())
                }
                _ => None,
            })
            .await
            .map_err(ws_err)
        })
        .await?;
    r.step("WS message.new at the receiver", async {
        let m = b_ws
            .wait_for(wait, new_message("chk-1"))
            .await
            .map_err(ws_err)?;
        ensure(m.id == first.id, || "another message id".into())
    })
    .await;
    let second = r
        .must("POST /chat/conversations/:id/messages (text)", async {
            bob.api
                .send_text(conv, "see https://example.com/chk please", Some("chk-2"))
                .await
                .map_err(describe)
        })
        .await?;
    r.step("  REST send → WS message.new", async {
        let m = a_ws
            .wait_for(wait, new_message("chk-2"))
            .await
            .map_err(ws_err)?;
        ensure(m.id == second.id, || "another message id".into())
    })
    .await;
    r.step("  same temp_id again → the same message", async {
        let again = bob
            .api
            .send_text(conv, "see https://example.com/chk please", Some("chk-2"))
            .await
            .map_err(describe)?;
        ensure(again.id == second.id, || "a duplicate was stored".into())
    })
    .await;
    Ok(Sent { first, second })
}

/// The conversation list, unread count, cursor pages, one message and its context.
pub(super) async fn read_history(c: &mut Check<'_>, chat: &Chat, sent: &Sent) {
    let (alice, bob, conv) = (c.alice, c.bob, chat.conv);
    let (first, second) = (&sent.first, &sent.second);
    let r = &mut *c.r;
    r.step(
        "GET /chat/conversations (list, last message, unread)",
        async {
            let page = alice
                .api
                .conversations(&PageQuery::default())
                .await
                .map_err(describe)?;
            let c = page
                .data
                .iter()
                .find(|c| c.id == conv)
                .ok_or("conversation missing")?;
            ensure(c.other_user.online, || "bob not shown online".into())?;
            ensure(
                c.last_message.as_ref().map(|m| m.id) == Some(second.id),
                || "wrong last message".into(),
            )?;
            ensure(c.unread_count == 1, || {
                format!("unread {} ≠ 1", c.unread_count)
            })
        },
    )
    .await;
    r.step("GET /chat/conversations/unread-count", async {
        let u = alice.api.unread_count().await.map_err(describe)?;
        ensure(u.total == 1, || format!("total {} ≠ 1", u.total))
    })
    .await;
    r.step(
        "GET /chat/conversations/:id/messages (cursor pages)",
        async {
            let p1 = alice
                .api
                .messages(conv, &PageQuery::limit(1))
                .await
                .map_err(describe)?;
            ensure(p1.data.len() == 1 && p1.data[0].id == second.id, || {
                "page 1 is not the newest".into()
            })?;
            let cursor = p1
                .next_cursor
                .filter(|_| p1.has_more)
                .ok_or("no next cursor")?;
            let p2 = alice
                .api
                .messages(conv, &PageQuery::before(cursor, 10))
                .await
                .map_err(describe)?;
            ensure(
                p2.data.iter().map(|m| m.id).collect::<Vec<_>>() == vec![first.id] && !p2.has_more,
                || "page 2 is not the older message alone".into(),
            )
        },
    )
    .await;
    r.step("GET /chat/messages/:id", async {
        let m = bob.api.message(first.id).await.map_err(describe)?;
        ensure(m.content.as_deref() == Some("hello from the check"), || {
            "content differs".into()
        })
    })
    .await;
    r.step("GET /chat/messages/:id/context", async {
        let c = bob.api.context(second.id, 5, 5).await.map_err(describe)?;
        ensure(c.target_id == second.id && c.data.len() == 2, || {
            format!("{} messages around the target", c.data.len())
        })
    })
    .await;
}

/// Read receipts sent over WS and REST reach the other party.
pub(super) async fn read_receipts(c: &mut Check<'_>, chat: &mut Chat, sent: &Sent) {
    let (alice, bob, wait, conv, first) = (c.alice, c.bob, c.wait, chat.conv, &sent.first);
    let r = &mut *c.r;
    let Chat { a_ws, b_ws, .. } = chat;
    r.step("WS message.read → message.read_ack", async {
        a_ws.send(&ClientEvent::MessageRead {
            conversation_id: conv,
            up_to_message_id: None,
        })
        .await
        .map_err(ws_err)?;
        a_ws.wait_for(wait, |e| match e {
            ServerEvent::MessageReadAck {
                conversation_id, ..
            } if *conversation_id == conv => Some(()),
            _ => None,
        })
        .await
        .map_err(ws_err)
    })
    .await;
    r.step("WS message.read_update to the other party", async {
        b_ws.wait_for(wait, |e| match e {
            ServerEvent::MessageReadUpdate { reader_id, .. } if *reader_id == alice.id => Some(()),
            _ => None,
        })
        .await
        .map_err(ws_err)
    })
    .await;
    r.step("POST /chat/conversations/:id/read", async {
        let res = bob
            .api
            .mark_read(conv, Some(first.id))
            .await
            .map_err(describe)?;
        ensure(res.marked == 1 && res.unread_count == 0, || {
            format!("marked {}, unread {}", res.marked, res.unread_count)
        })
    })
    .await;
    r.step("  REST mark read → WS message.read_update", async {
        a_ws.wait_for(wait, |e| match e {
            ServerEvent::MessageReadUpdate { reader_id, .. } if *reader_id == bob.id => Some(()),
            _ => None,
        })
        .await
        .map_err(ws_err)
    })
    .await;
}

/// typing.start and typing.stop are relayed; ping gets pong.
pub(super) async fn typing_and_ping(c: &mut Check<'_>, chat: &mut Chat) {
    let (alice, wait, conv) = (c.alice, c.wait, chat.conv);
    let r = &mut *c.r;
    let Chat { a_ws, b_ws, .. } = chat;
    for (start, name) in [
        (true, "WS typing.start relayed"),
        (false, "WS typing.stop relayed"),
    ] {
        r.step(name, async {
            let ev = if start {
                ClientEvent::TypingStart {
                    conversation_id: conv,
                }
            } else {
                ClientEvent::TypingStop {
                    conversation_id: conv,
                }
            };
            a_ws.send(&ev).await.map_err(ws_err)?;
            b_ws.wait_for(wait, |e| match e {
                ServerEvent::TypingStart { user_id, .. } if start && *user_id == alice.id => {
                    Some(())
                }
                ServerEvent::TypingStop { user_id, .. } if !start && *user_id == alice.id => {
                    Some(())
                }
                _ => None,
            })
            .await
            .map_err(ws_err)
        })
        .await;
    }
    r.step("WS ping → pong", async {
        a_ws.send(&ClientEvent::Ping {}).await.map_err(ws_err)?;
        a_ws.wait_for(wait, |e| matches!(e, ServerEvent::Pong {}).then_some(()))
            .await
            .map_err(ws_err)
    })
    .await;
}
