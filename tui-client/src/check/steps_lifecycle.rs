//! Message lifecycle steps of `chat-tui check`: replies, edits, reactions, deletes for me
//! and for everyone (REST and WebSocket), their events on the other side, and search.

use chat_protocol::error::ErrorCode;
use chat_protocol::rest::{DeleteScope, Message};
use chat_protocol::ws::{ClientEvent, ServerEvent};
use chat_protocol::MessageId;

use super::{describe, ensure, refused, ws_err, Chat, Check};

/// Every lifecycle call and event, with the refusals a client meets first.
pub(super) async fn lifecycle(c: &mut Check<'_>, chat: &mut Chat) {
    let (alice, bob, carol, wait, conv) = (c.alice, c.bob, c.carol, c.wait, chat.conv);
    let r = &mut *c.r;
    let Chat { a_ws, b_ws, .. } = chat;
    let Some(original) = r
        .step("POST messages (text to act on)", async {
            alice
                .api
                .send_text(conv, "lifecycle: crème brûlée tonight?", Some("chk-lc"))
                .await
                .map_err(describe)
        })
        .await
    else {
        return;
    };
    let id = original.id;
    let reply = r
        .step("POST messages with reply_to_id → reply_to", async {
            let m = bob
                .api
                .send_reply(conv, "yes please", Some("chk-reply"), Some(id))
                .await
                .map_err(describe)?;
            let quoted = m.reply_to.as_ref().ok_or("no reply_to")?;
            ensure(quoted.id == id && !quoted.deleted, || format!("{quoted:?}"))?;
            Ok(m)
        })
        .await;
    r.step("  WS message.new carries reply_to", async {
        let m = a_ws
            .wait_for(wait, |e| match e {
                ServerEvent::MessageNew { message }
                    if message.temp_id.as_deref() == Some("chk-reply") =>
                {
                    Some(message.clone())
                }
                _ => None,
            })
            .await
            .map_err(ws_err)?;
        ensure(m.reply_to.as_ref().is_some_and(|q| q.id == id), || {
            "no reply_to".into()
        })
    })
    .await;
    r.step("PATCH /chat/messages/:id → edited_at", async {
        let m = alice
            .api
            .edit_message(id, "lifecycle: crème brûlée at eight?")
            .await
            .map_err(describe)?;
        ensure(m.edited_at.is_some(), || "no edited_at".into())
    })
    .await;
    r.step("  WS message.edited at the other side", async {
        let m = b_ws.wait_for(wait, edited(id)).await.map_err(ws_err)?;
        ensure(
            m.content.as_deref() == Some("lifecycle: crème brûlée at eight?"),
            || format!("content {:?}", m.content),
        )
    })
    .await;
    r.step("WS message.edit → message.edited", async {
        a_ws.send(&ClientEvent::MessageEdit {
            message_id: id,
            content: "lifecycle: crème brûlée at nine?".into(),
        })
        .await
        .map_err(ws_err)?;
        let m = b_ws.wait_for(wait, edited(id)).await.map_err(ws_err)?;
        ensure(
            m.content.as_deref() == Some("lifecycle: crème brûlée at nine?"),
            || format!("content {:?}", m.content),
        )
    })
    .await;
    if let Some(reply) = &reply {
        r.step("  the reply's quote follows the edit", async {
            let m = alice.api.message(reply.id).await.map_err(describe)?;
            let preview = m.reply_to.and_then(|q| q.preview).unwrap_or_default();
            ensure(preview.ends_with("at nine?"), || {
                format!("preview {preview:?}")
            })
        })
        .await;
    }
    r.step("  edit by the other user → 403 forbidden", async {
        refused(
            bob.api.edit_message(id, "mine").await,
            403,
            ErrorCode::Forbidden,
        )
    })
    .await;
    r.step("  edit by an outsider → 404 not_found", async {
        refused(
            carol.api.edit_message(id, "x").await,
            404,
            ErrorCode::NotFound,
        )
    })
    .await;
    r.step("PUT /chat/messages/:id/reactions/:emoji", async {
        let now = bob.api.react(id, "👍", true).await.map_err(describe)?;
        ensure(now.reactions.iter().any(|x| x.emoji == "👍"), || {
            format!("{:?}", now.reactions)
        })
    })
    .await;
    r.step("  WS reaction.updated (added)", async {
        a_ws.wait_for(wait, reaction(id, true))
            .await
            .map_err(ws_err)
            .map(drop)
    })
    .await;
    r.step("DELETE /chat/messages/:id/reactions/:emoji", async {
        let now = bob.api.react(id, "👍", false).await.map_err(describe)?;
        ensure(now.reactions.is_empty(), || format!("{:?}", now.reactions))
    })
    .await;
    r.step("  WS reaction.updated (removed)", async {
        a_ws.wait_for(wait, reaction(id, false))
            .await
            .map_err(ws_err)
            .map(drop)
    })
    .await;
    r.step("WS reaction.set → reaction.updated", async {
        b_ws.send(&ClientEvent::ReactionSet {
            message_id: id,
            emoji: "🎉".into(),
            add: true,
        })
        .await
        .map_err(ws_err)?;
        a_ws.wait_for(wait, reaction(id, true))
            .await
            .map_err(ws_err)
            .map(drop)
    })
    .await;
    r.step(
        "  a reaction that is not one emoji → 400 validation_failed",
        async {
            refused(
                bob.api.react(id, "ok", true).await,
                400,
                ErrorCode::ValidationFailed,
            )
        },
    )
    .await;
    r.step("GET /chat/search (accents and prefixes)", async {
        let page = bob
            .api
            .search("CREME bru", None, None, 10)
            .await
            .map_err(describe)?;
        let hit = page.data.first().ok_or("no hit")?;
        ensure(
            hit.message.id == id && hit.snippet.contains("[crème]"),
            || format!("{} {:?}", hit.message.id, hit.snippet),
        )
    })
    .await;
    r.step("  search by an outsider finds nothing", async {
        let page = carol
            .api
            .search("creme", None, None, 10)
            .await
            .map_err(describe)?;
        ensure(page.data.is_empty(), || format!("{} hits", page.data.len()))
    })
    .await;
    r.step("DELETE /chat/messages/:id?scope=me", async {
        let reply = reply.as_ref().ok_or("no reply to delete")?;
        alice
            .api
            .delete_message(reply.id, DeleteScope::Me)
            .await
            .map_err(describe)?;
        a_ws.wait_for(wait, deleted(reply.id, DeleteScope::Me))
            .await
            .map_err(ws_err)?;
        refused(alice.api.message(reply.id).await, 404, ErrorCode::NotFound)?;
        bob.api.message(reply.id).await.map(drop).map_err(describe)
    })
    .await;
    r.step("DELETE /chat/messages/:id?scope=everyone", async {
        refused(
            bob.api.delete_message(id, DeleteScope::Everyone).await,
            403,
            ErrorCode::Forbidden,
        )?;
        alice
            .api
            .delete_message(id, DeleteScope::Everyone)
            .await
            .map_err(describe)?;
        b_ws.wait_for(wait, deleted(id, DeleteScope::Everyone))
            .await
            .map_err(ws_err)?;
        let tombstone = bob.api.message(id).await.map_err(describe)?;
        ensure(
            tombstone.deleted_at.is_some() && tombstone.content.is_none(),
            || format!("{tombstone:?}"),
        )
    })
    .await;
    r.step("WS message.delete → message.deleted", async {
        let m = bob
            .api
            .send_text(conv, "short-lived", Some("chk-del"))
            .await
            .map_err(describe)?;
        b_ws.send(&ClientEvent::MessageDelete {
            message_id: m.id,
            scope: DeleteScope::Everyone,
        })
        .await
        .map_err(ws_err)?;
        a_ws.wait_for(wait, deleted(m.id, DeleteScope::Everyone))
            .await
            .map_err(ws_err)
            .map(drop)
    })
    .await;
}

fn edited(id: MessageId) -> impl Fn(&ServerEvent) -> Option<Message> {
    move |e| match e {
        ServerEvent::MessageEdited { message } if message.id == id => Some(message.clone()),
        _ => None,
    }
}

fn reaction(id: MessageId, added: bool) -> impl Fn(&ServerEvent) -> Option<()> {
    move |e| match e {
        ServerEvent::ReactionUpdated {
            message_id,
            added: a,
            ..
        } if *message_id == id && *a == added => Some(()),
        _ => None,
    }
}

fn deleted(id: MessageId, scope: DeleteScope) -> impl Fn(&ServerEvent) -> Option<()> {
    move |e| match e {
        ServerEvent::MessageDeleted {
            message_id,
            scope: s,
            ..
        } if *message_id == id && *s == scope => Some(()),
        _ => None,
    }
}
