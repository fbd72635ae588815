//! Resume steps of `chat-tui check`: disconnect, offline sends, reconnect and catch-up.

use chat_client::{PageQuery, Socket};
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
    // The server holds `user.offline` back for its presence grace period
    // (CHAT_PRESENCE_GRACE_MS, 5 s by default), so a quick reconnect shows no flap: the
    // wait covers that on top of the usual one.
    let offline_wait = wait + std::time::Duration::from_secs(10);
    r.step("WS user.offline after the last socket closes", async {
        a_ws.wait_for(offline_wait, |e| match e {
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
    // The socket bob just opened says how far his log goes; the two messages he missed
    // are its last two entries, so a socket resuming two before the end gets them again.
    let head = r
        .step("WS sync.complete on a new socket (bob)", async {
            b_ws.wait_for(wait, |e| match e {
                ServerEvent::SyncComplete { seq, .. } => Some(*seq),
                _ => None,
            })
            .await
            .map_err(ws_err)
        })
        .await;
    if let Some(head) = head.filter(|h| *h >= 2) {
        r.step(
            "WS ?since= replays what was missed in order, then sync.complete",
            async {
                let mut ws = Socket::connect_since(server, bob.api.token(), Some(head - 2))
                    .await
                    .map_err(ws_err)?;
                let mut replayed = Vec::new();
                let count = loop {
                    match ws.next(wait).await.map_err(ws_err)? {
                        ServerEvent::MessageNew { message } => replayed.push(message.id),
                        ServerEvent::SyncComplete { replayed, .. } => break replayed,
                        _ => {}
                    }
                };
                ws.close().await;
                ensure(replayed == missed && count == 2, || {
                    format!("replayed {replayed:?} (count {count}), missed {missed:?}")
                })
            },
        )
        .await;
    }
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
