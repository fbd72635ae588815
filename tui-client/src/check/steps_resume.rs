//! Resume steps of `chat-tui check`: disconnect, offline sends, reconnect and catch-up.

use chat_client::PageQuery;
use chat_protocol::ws::{ClientEvent, ServerEvent};

use super::{describe, ensure, greeted, new_message, ws_err, Abort, Chat, Check};

/// bob drops offline, misses two messages, reconnects, catches up and sends again.
pub(super) async fn reconnect(c: &mut Check<'_>, chat: Chat) -> Result<(), Abort> {
    let (server, alice, bob, wait) = (c.server, c.alice, c.bob, c.wait);
    let r = &mut *c.r;
    let Chat {
        conv,
        mut a_ws,
        b_ws,
    } = chat;
    b_ws.close().await;
    r.step("WS user.offline after the last socket closes", async {
        a_ws.wait_for(wait, |e| match e {
            ServerEvent::UserOffline { user_id, .. } if *user_id == bob.id => Some(()),
            _ => None,
        })
        .await
        .map_err(ws_err)
    })
    .await;
    let mut missed = Vec::new();
    for i in 0..2 {
        if let Some(m) = r
            .step(
                &format!("send while the receiver is offline ({})", i + 1),
                async {
                    alice
                        .api
                        .send_text(
                            conv,
                            &format!("while you were away {i}"),
                            Some(&format!("chk-away-{i}")),
                        )
                        .await
                        .map_err(describe)
                },
            )
            .await
        {
            missed.push(m.id);
        }
    }
    let mut b_ws = r
        .must("WS reconnect (bob)", async {
            let (ws, id) = greeted(server, bob.api.token(), wait).await?;
            ensure(id == bob.id, || {
                "connection.success for someone else".into()
            })?;
            Ok(ws)
        })
        .await?;
    r.step("WS user.online reaches contacts (bob reconnects)", async {
        a_ws.wait_for(wait, |e| match e {
            ServerEvent::UserOnline { user_id } if *user_id == bob.id => Some(()),
            _ => None,
        })
        .await
        .map_err(ws_err)
    })
    .await;
    r.step(
        "  catch up: what was missed is in history, in order",
        async {
            let p = bob
                .api
                .messages(conv, &PageQuery::limit(2))
                .await
                .map_err(describe)?;
            let mut got: Vec<_> = p.data.iter().map(|m| m.id).collect();
            got.reverse();
            ensure(got == missed, || {
                "missed messages not found in order".into()
            })
        },
    )
    .await;
    r.step("  the new socket sends and delivers", async {
        b_ws.send(&ClientEvent::MessageSend {
            conversation_id: conv,
            content: "back".into(),
            temp_id: Some("chk-back".into()),
            reply_to_id: None,
        })
        .await
        .map_err(ws_err)?;
        a_ws.wait_for(wait, new_message("chk-back"))
            .await
            .map_err(ws_err)?;
        Ok(())
    })
    .await;
    a_ws.close().await;
    b_ws.close().await;
    Ok(())
}
