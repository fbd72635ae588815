//! Media steps of `chat-tui check`: image and file uploads, signed URLs, galleries.

use chat_client::{PageQuery, Upload};
use chat_protocol::rest::MessageType;
use reqwest::Method;

use super::{describe, ensure, new_message, ws_err, Chat, Check};

/// A small real PNG (48×32), for the image upload.
const PNG: &[u8] = include_bytes!("../../assets/check.png");

/// Image and file uploads, the signed media URL (and a tampered one), the media/file/link lists.
pub(super) async fn media(c: &mut Check<'_>, chat: &mut Chat) {
    let (server, alice, bob, wait, conv) = (c.server, c.alice, c.bob, c.wait, chat.conv);
    let (r, anon) = (&mut *c.r, &c.anon);
    let b_ws = &mut chat.b_ws;
    let image = r
        .step("POST messages multipart (image)", async {
            let m = alice
                .api
                .send_media(
                    conv,
                    vec![Upload {
                        name: "check.png".into(),
                        content_type: "image/png".into(),
                        bytes: PNG.to_vec(),
                    }],
                    Some("a picture"),
                    Some("chk-img"),
                )
                .await
                .map_err(describe)?;
            ensure(m.kind == MessageType::Image, || {
                "not an image message".into()
            })?;
            let item = m.media.first().ok_or("no media item")?;
            ensure(item.width == Some(48) && item.height == Some(32), || {
                format!("size {:?}×{:?}", item.width, item.height)
            })?;
            ensure(item.thumbnail_url.is_some(), || "no thumbnail".into())?;
            Ok(m)
        })
        .await;
    r.step("  media message → WS message.new", async {
        let m = b_ws
            .wait_for(wait, new_message("chk-img"))
            .await
            .map_err(ws_err)?;
        ensure(m.kind == MessageType::Image, || "not an image".into())
    })
    .await;
    if let Some(image) = &image {
        r.step("  GET the signed media URL", async {
            let url = &image.media[0].url;
            let resp = anon
                .plain(Method::GET, url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            ensure(resp.status().is_success(), || {
                format!("HTTP {}", resp.status())
            })?;
            let nosniff = resp
                .headers()
                .get("x-content-type-options")
                .is_some_and(|v| v == "nosniff");
            // Presigned object-store URLs carry the store's headers, not chatd's.
            ensure(
                nosniff || (!url.starts_with('/') && !url.starts_with(server)),
                || "no X-Content-Type-Options: nosniff".into(),
            )?;
            let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
            ensure(!bytes.is_empty(), || "empty body".into())
        })
        .await;
        r.step("  tampered media URL → 403", async {
            let url = &image.media[0].url;
            if !(url.starts_with('/') || url.starts_with(server)) {
                return Ok(()); // signed by an object store, not chatd
            }
            let bad = format!("{}0", url);
            let resp = anon
                .plain(Method::GET, &bad)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            ensure(resp.status() == 403, || format!("HTTP {}", resp.status()))
        })
        .await;
    }
    r.step("GET /chat/conversations/:id/media", async {
        let p = bob
            .api
            .media(conv, &PageQuery::default())
            .await
            .map_err(describe)?;
        ensure(
            p.data
                .iter()
                .any(|m| m.temp_id.as_deref() == Some("chk-img")),
            || "the image is not in the gallery".into(),
        )
    })
    .await;
    r.step("POST messages multipart (file)", async {
        let m = alice
            .api
            .send_media(
                conv,
                vec![Upload {
                    name: "notes.txt".into(),
                    content_type: "text/plain".into(),
                    bytes: b"check notes\n".to_vec(),
                }],
                None,
                Some("chk-file"),
            )
            .await
            .map_err(describe)?;
        ensure(m.kind == MessageType::File, || "not a file message".into())
    })
    .await;
    r.step("GET /chat/conversations/:id/files", async {
        let p = bob
            .api
            .files(conv, &PageQuery::default())
            .await
            .map_err(describe)?;
        ensure(
            p.data
                .iter()
                .any(|m| m.temp_id.as_deref() == Some("chk-file")),
            || "the file is not listed".into(),
        )
    })
    .await;
    r.step("GET /chat/conversations/:id/links", async {
        let p = alice
            .api
            .links(conv, &PageQuery::default())
            .await
            .map_err(describe)?;
        ensure(
            p.data.iter().any(|l| l.url == "https://example.com/chk"),
            || "the link is not listed".into(),
        )
    })
    .await;
}
