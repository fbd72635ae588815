//! Opening steps of `chat-tui check`: service endpoints, the conversation, the sockets.

use chat_client::{PageQuery, Socket, WsError};
use chat_protocol::error::ErrorCode;
use chat_protocol::ws::ServerEvent;
use chat_protocol::ConversationId;
use reqwest::Method;

use super::{describe, ensure, greeted, refused, short, ws_err, Abort, Check};

/// The service endpoints answer: /healthz, /readyz and /metrics.
pub(super) async fn service_endpoints(c: &mut Check<'_>) {
    let (r, anon) = (&mut *c.r, &c.anon);
    for (path, want) in [
        ("/healthz", ""),
        ("/readyz", "ready"),
        ("/metrics", "chat_"),
    ] {
        r.step(&format!("GET {path}"), async {
            let resp = anon
                .plain(Method::GET, path)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = resp.text().await.map_err(|e| e.to_string())?;
            ensure(status.is_success(), || format!("HTTP {status}"))?;
            ensure(body.contains(want), || format!("body lacks {want:?}"))
        })
        .await;
    }
}

/// Every user starts with no conversations; alice and bob open theirs, bad partners are refused.
pub(super) async fn open_conversation(c: &mut Check<'_>) -> Result<ConversationId, Abort> {
    let (alice, bob, carol) = (c.alice, c.bob, c.carol);
    let r = &mut *c.r;
    for u in [alice, bob, carol] {
        r.must(
            &format!("GET /chat/conversations ({})", short(&u.name)),
            async {
                let page = u
                    .api
                    .conversations(&PageQuery::default())
                    .await
                    .map_err(describe)?;
                ensure(page.data.is_empty(), || {
                    "a fresh user has conversations".into()
                })
            },
        )
        .await?;
    }
    let conv = r
        .must("GET /chat/conversations/with/:username", async {
            let c = alice
                .api
                .conversation_with(&bob.name)
                .await
                .map_err(describe)?;
            ensure(c.other_user.id == bob.id, || "other_user is not bob".into())?;
            let again = bob
                .api
                .conversation_with(&alice.name)
                .await
                .map_err(describe)?;
            ensure(again.id == c.id, || "the pair got two conversations".into())?;
            Ok(c.id)
        })
        .await?;
    r.step("  unknown user → 404 not_found", async {
        refused(
            alice.api.conversation_with("nobody_here_x").await,
            404,
            ErrorCode::NotFound,
        )
    })
    .await;
    r.step("  oneself → 400 self_action", async {
        refused(
            alice.api.conversation_with(&alice.name).await,
            400,
            ErrorCode::SelfAction,
        )
    })
    .await;
    Ok(conv)
}

/// alice and bob connect (no presence across an empty conversation); a bad token is refused.
pub(super) async fn connect_sockets(c: &mut Check<'_>) -> Result<(Socket, Socket), Abort> {
    let (server, alice, bob, wait) = (c.server, c.alice, c.bob, c.wait);
    let r = &mut *c.r;
    let mut a_ws = r
        .must("WS connect → connection.success (alice)", async {
            let (ws, id) = greeted(server, alice.api.token(), wait).await?;
            ensure(id == alice.id, || {
                "connection.success for someone else".into()
            })?;
            Ok(ws)
        })
        .await?;
    // SPEC "Privacy": presence only across a conversation with a message in it, so bob,
    // in an empty conversation with alice so far, is not in her status.bulk and his
    // user.online does not reach her (checked after messages, on his reconnect).
    r.step(
        "WS status.bulk leaves out an empty conversation's user",
        async {
            let entry = a_ws
                .wait_for(wait, |e| match e {
                    ServerEvent::StatusBulk { users } => {
                        Some(users.iter().find(|u| u.user_id == bob.id).cloned())
                    }
                    _ => None,
                })
                .await
                .map_err(ws_err)?;
            match entry {
                None => Ok(()),
                Some(_) => Err("bob's presence shown across an empty conversation".into()),
            }
        },
    )
    .await;
    let b_ws = r
        .must("WS connect with Authorization header (bob)", async {
            let (ws, id) = greeted(server, bob.api.token(), wait).await?;
            ensure(id == bob.id, || {
                "connection.success for someone else".into()
            })?;
            Ok(ws)
        })
        .await?;
    r.step("WS connect with a bad token → refused 401", async {
        match Socket::connect(server, "not-a-token").await {
            Err(WsError::Connect {
                status: Some(401), ..
            }) => Ok(()),
            Err(e) => Err(format!("expected 401, got {e}")),
            Ok(_) => Err("accepted a bad token".into()),
        }
    })
    .await;
    Ok((a_ws, b_ws))
}
