//! End to end: media messages on the real binary: multipart sends, typing from bytes,
//! limits while streaming, EXIF stripping and thumbnails, signed URLs, galleries, and
//! hostile uploads that must leave nothing behind.

use std::path::Path;

use chat_e2e::files;
use chat_e2e::server::{Backend, TestServer, TestUser};
use reqwest::multipart::{Form, Part};
use serde_json::Value;

/// (file name, declared content type, bytes)
type FilePart = (&'static str, &'static str, Vec<u8>);

async fn fetch(s: &TestServer, url: &str) -> reqwest::Response {
    let full = if url.starts_with('/') {
        s.url(url)
    } else {
        url.to_string()
    };
    s.http.get(full).send().await.expect("fetch media")
}

fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p)
            } else {
                1
            }
        })
        .sum()
}

async fn setup(backend: Backend) -> Option<(TestServer, TestUser, TestUser, String)> {
    let s = TestServer::start(backend).await?;
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    Some((s, alice, bob, conv))
}

chat_e2e::on_both_backends!(images_videos_and_files);

async fn images_videos_and_files(s: &TestServer) {
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    // Several images with a caption and a temp_id; declared types are ignored.
    let r = s
        .upload(
            &alice,
            &conv,
            vec![
                ("a.png", "application/octet-stream", files::png(640, 480)),
                ("b.gif", "image/png", files::gif(30, 20)),
                ("c.webp", "image/webp", files::webp(50, 40)),
                ("d.png", "image/png", files::png_with_alpha(100, 10)),
            ],
            &[
                ("content", "holiday https://example.com/album"),
                ("temp_id", "m1"),
            ],
        )
        .await;
    let m = r.expect(201).clone();
    assert_eq!(m["type"], "image");
    assert_eq!(m["content"], "holiday https://example.com/album");
    let media = m["media"].as_array().unwrap();
    assert_eq!(media.len(), 4);
    assert_eq!(media[0]["mime"], "image/png");
    assert_eq!(
        (media[0]["width"].as_u64(), media[0]["height"].as_u64()),
        (Some(640), Some(480))
    );
    assert_eq!(media[1]["mime"], "image/gif");
    assert_eq!(media[2]["mime"], "image/webp");
    assert_eq!(media[0]["name"], "a.png");
    // Thumbnail: longest side 320.
    let thumb = fetch(s, media[0]["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!(thumb.status(), 200);
    let t = image::load_from_memory(&thumb.bytes().await.unwrap()).unwrap();
    assert_eq!((t.width(), t.height()), (320, 240));
    // Transparent images keep transparency in a PNG thumbnail.
    let thumb = fetch(s, media[3]["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!(thumb.headers()["content-type"], "image/png");

    // Idempotent: the same temp_id returns the stored message and stores nothing new.
    let objects = s.data_dir.join("media/objects");
    let before = count_files(&objects);
    let again = s
        .upload(
            &alice,
            &conv,
            vec![("a.png", "image/png", files::png(10, 10))],
            &[("temp_id", "m1")],
        )
        .await;
    assert_eq!(again.expect(200)["id"], m["id"]);
    assert_eq!(count_files(&objects), before);

    // Served as a download nobody sniffs, with Range support.
    let url = media[0]["url"].as_str().unwrap();
    let full = fetch(s, url).await;
    assert_eq!(full.status(), 200);
    let h = full.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert!(h["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    let body = full.bytes().await.unwrap();
    let ranged = s
        .http
        .get(s.url(url))
        .header("range", "bytes=0-7")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(&ranged.bytes().await.unwrap()[..], &body[..8]);
    // Tampered or unsigned links are refused.
    let tampered = url.replace("sig=", "sig=AA");
    assert_eq!(fetch(s, &tampered).await.status(), 403);
    let other_exp = url.replace("exp=", "exp=9");
    assert_eq!(fetch(s, &other_exp).await.status(), 403);
    let unsigned = url.split('?').next().unwrap();
    let r = fetch(s, unsigned).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(
        fetch(s, "/media/..%2f..%2fjwt_secret?exp=1&sig=x")
            .await
            .status(),
        404
    );

    // A video: metadata from the container; the message sends without ffmpeg.
    let r = s
        .upload(
            &bob,
            &conv,
            vec![("clip.mp4", "video/mp4", files::mp4(1000))],
            &[],
        )
        .await;
    let v = r.expect(201).clone();
    assert_eq!(v["type"], "video");
    let item = &v["media"][0];
    assert_eq!(item["mime"], "video/mp4");
    assert_eq!(item["duration_ms"], 2000);
    assert_eq!(
        (item["width"].as_u64(), item["height"].as_u64()),
        (Some(320), Some(240))
    );
    let video = fetch(s, item["url"].as_str().unwrap()).await;
    assert_eq!(video.headers()["content-type"], "video/mp4");
    assert_eq!(
        video.bytes().await.unwrap().len() as u64,
        item["size"].as_u64().unwrap()
    );

    // Files: pdf, docx, zip, text.
    for (name, bytes, mime) in [
        ("r.pdf", files::pdf(), "application/pdf"),
        (
            "r.docx",
            files::docx(),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (
            "a.zip",
            files::zip(&[("x.txt", b"hello")]),
            "application/zip",
        ),
        (
            "notes.txt",
            b"plain notes\nline two\n".to_vec(),
            "text/plain",
        ),
    ] {
        let r = s
            .upload(
                &alice,
                &conv,
                vec![(name, "application/octet-stream", bytes.clone())],
                &[],
            )
            .await;
        let f = r.expect(201).clone();
        assert_eq!(f["type"], "file", "{name}");
        assert_eq!(f["media"][0]["mime"], mime, "{name}");
        assert_eq!(f["media"][0]["name"], name);
        let served = fetch(s, f["media"][0]["url"].as_str().unwrap()).await;
        assert_eq!(&served.bytes().await.unwrap()[..], &bytes[..], "{name}");
    }

    // Galleries: images and videos in /media, documents in /files, newest first.
    let g = s
        .get(&bob, &format!("/chat/conversations/{conv}/media?limit=1"))
        .await;
    let g = g.expect(200).clone();
    assert_eq!(g["data"][0]["type"], "video");
    assert_eq!(g["has_more"], true);
    let next = g["next_cursor"].as_str().unwrap();
    let g2 = s
        .get(
            &bob,
            &format!("/chat/conversations/{conv}/media?limit=1&before={next}"),
        )
        .await;
    assert_eq!(g2.expect(200)["data"][0]["type"], "image");
    let f = s
        .get(&bob, &format!("/chat/conversations/{conv}/files"))
        .await;
    assert_eq!(f.expect(200)["data"].as_array().unwrap().len(), 4);
    // The caption's link is in the links archive.
    let l = s
        .get(&bob, &format!("/chat/conversations/{conv}/links"))
        .await;
    assert_eq!(l.expect(200)["data"][0]["url"], "https://example.com/album");
    // History and single-message reads carry fresh signed URLs.
    let one = s
        .get(
            &bob,
            &format!("/chat/messages/{}", m["id"].as_str().unwrap()),
        )
        .await;
    let u = one.expect(200)["media"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fetch(s, &u).await.status(), 200);
}

/// With ffmpeg installed, a real video gets a JPEG poster frame (longest side 320 px)
/// next to its container metadata.
#[tokio::test]
async fn video_poster_frame_with_ffmpeg() {
    if !chat_e2e::ffmpeg_available() {
        return;
    }
    let Some((s, alice, bob, conv)) = setup(Backend::Sqlite).await else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("chat-poster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("clip.mp4");
    let made = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=640x360:rate=10:duration=1")
        .args(["-pix_fmt", "yuv420p", "-c:v", "mpeg4"])
        .arg(&clip)
        .status()
        .await
        .expect("run ffmpeg");
    assert!(made.success(), "ffmpeg made the test clip");
    let bytes = std::fs::read(&clip).unwrap();
    std::fs::remove_dir_all(&dir).ok();

    let r = s
        .upload(
            &alice,
            &conv,
            vec![("clip.mp4", "video/mp4", bytes)],
            &[("temp_id", "v1")],
        )
        .await;
    let m = r.expect(201).clone();
    assert_eq!(m["type"], "video");
    let item = &m["media"][0];
    assert_eq!(
        (item["width"].as_u64(), item["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(item["duration_ms"], 1000);
    let thumb_url = item["thumbnail_url"]
        .as_str()
        .expect("a poster frame from ffmpeg");
    let thumb = fetch(&s, thumb_url).await;
    assert_eq!(thumb.status(), 200);
    assert_eq!(thumb.headers()["content-type"], "image/jpeg");
    let poster = image::load_from_memory(&thumb.bytes().await.unwrap()).expect("a JPEG");
    assert_eq!((poster.width(), poster.height()), (320, 180));

    // The receiver sees the same poster in history.
    let history = s
        .get(&bob, &format!("/chat/conversations/{conv}/messages"))
        .await;
    let h = history.expect(200).clone();
    assert!(h["data"][0]["media"][0]["thumbnail_url"].is_string());
}

#[tokio::test]
async fn exif_orientation_applied_and_gps_stripped() {
    let Some((s, alice, _bob, conv)) = setup(Backend::Sqlite).await else {
        return;
    };
    let original = files::jpeg_with_gps(40, 20);
    assert!(original
        .windows(files::GPS_MARKER.len())
        .any(|w| w == files::GPS_MARKER));
    let r = s
        .upload(
            &alice,
            &conv,
            vec![("gps.jpg", "image/jpeg", original)],
            &[],
        )
        .await;
    let m = r.expect(201).clone();
    let item = &m["media"][0];
    // Orientation 6 (rotate 90°): 40×20 becomes 20×40.
    assert_eq!(
        (item["width"].as_u64(), item["height"].as_u64()),
        (Some(20), Some(40))
    );
    for key in ["url", "thumbnail_url"] {
        let served = fetch(&s, item[key].as_str().unwrap())
            .await
            .bytes()
            .await
            .unwrap();
        assert!(
            !served.windows(4).any(|w| w == b"Exif"),
            "{key} still has EXIF"
        );
        assert!(
            !served.windows(8).any(|w| w == files::GPS_MARKER),
            "{key} leaks GPS"
        );
        let img = image::load_from_memory(&served).unwrap();
        assert!(img.height() > img.width(), "{key} not rotated");
    }
    s.stop().await;
}

#[tokio::test]
async fn hostile_uploads_are_refused_and_leave_nothing() {
    let Some((s, alice, bob, conv)) = setup(Backend::Sqlite).await else {
        return;
    };
    let objects = s.data_dir.join("media/objects");
    let spool = s.data_dir.join("media/spool");
    let cases: Vec<(&str, Vec<FilePart>, u16, &str)> = vec![
        (
            "svg with script",
            vec![(
                "x.svg",
                "image/svg+xml",
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>"
                    .to_vec(),
            )],
            415,
            "unsupported_media_type",
        ),
        (
            "html renamed .png",
            vec![(
                "x.png",
                "image/png",
                b"<!DOCTYPE html><html><script>alert(1)</script></html>".to_vec(),
            )],
            415,
            "unsupported_media_type",
        ),
        (
            "truncated jpeg",
            vec![("t.jpg", "image/jpeg", files::jpeg(200, 200)[..300].to_vec())],
            415,
            "unsupported_media_type",
        ),
        (
            "png bomb",
            vec![("b.png", "image/png", files::png_bomb())],
            413,
            "payload_too_large",
        ),
        (
            "zero bytes",
            vec![("e.txt", "text/plain", Vec::new())],
            415,
            "unsupported_media_type",
        ),
        (
            "elf executable",
            vec![(
                "a.pdf",
                "application/pdf",
                b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0>\0".to_vec(),
            )],
            415,
            "unsupported_media_type",
        ),
        (
            "eleven images",
            (0..11)
                .map(|_| ("i.png", "image/png", files::png(8, 8)))
                .collect(),
            400,
            "validation_failed",
        ),
        (
            "image with a file",
            vec![
                ("i.png", "image/png", files::png(8, 8)),
                ("r.pdf", "application/pdf", files::pdf()),
            ],
            400,
            "validation_failed",
        ),
        (
            "oversize image",
            vec![("big.png", "image/png", {
                let mut b = files::png(8, 8);
                b.resize(10 * 1024 * 1024 + 1, 0);
                b
            })],
            413,
            "payload_too_large",
        ),
        ("no file", vec![], 400, "validation_failed"),
    ];
    for (what, parts, status, code) in cases {
        let r = s.upload(&alice, &conv, parts, &[("content", "x")]).await;
        assert_eq!(r.status.as_u16(), status, "{what}: {}", r.body);
        assert_eq!(r.body["error"]["code"], code, "{what}");
    }
    // Someone else's conversation: 404; a blocked sender: 403; nothing read or stored.
    let carol = s.registered_user("carol").await;
    let r = s
        .upload(
            &carol,
            &conv,
            vec![("a.png", "image/png", files::png(8, 8))],
            &[],
        )
        .await;
    assert_eq!(r.status, 404);
    s.post(
        &bob,
        "/chat/blocks",
        &serde_json::json!({"username": alice.username}),
    )
    .await
    .expect(201);
    let r = s
        .upload(
            &alice,
            &conv,
            vec![("a.png", "image/png", files::png(8, 8))],
            &[],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"]["code"], "blocked");

    assert_eq!(count_files(&objects), 0, "a refused upload left an object");
    assert_eq!(count_files(&spool), 0, "a refused upload left a spool file");
    let msgs = s
        .get(&alice, &format!("/chat/conversations/{conv}/messages"))
        .await;
    assert_eq!(msgs.expect(200)["data"], serde_json::json!([]));
    s.stop().await;
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_200_mb_upload_is_refused_while_streaming_with_flat_memory() {
    let Some((s, alice, _bob, conv)) = setup(Backend::Sqlite).await else {
        return;
    };
    let pid = s.pid();
    let before = peak_rss_kib(pid);
    // A video header, then 200 MB of zeros, sent in 1 MB chunks as they are produced.
    let head = files::mp4(0);
    let chunks = 200usize;
    let stream = futures_util::stream::iter((0..=chunks).map(move |i| {
        let chunk = if i == 0 {
            head.clone()
        } else {
            vec![0u8; 1024 * 1024]
        };
        Ok::<_, std::io::Error>(chunk)
    }));
    let part = Part::stream(reqwest::Body::wrap_stream(stream))
        .file_name("huge.mp4")
        .mime_str("video/mp4")
        .unwrap();
    let form = Form::new().part("file", part);
    let result = s
        .http
        .post(s.url(&format!("/chat/conversations/{conv}/messages")))
        .bearer_auth(&alice.token)
        .multipart(form)
        .send()
        .await;
    // The server answers 413 mid-body and closes; the client may see the answer or a
    // reset while still writing. Either way nothing is stored.
    if let Ok(resp) = result {
        let r = TestServer::reply(resp).await;
        assert_eq!(r.status, 413, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "payload_too_large");
    }
    let after = peak_rss_kib(pid);
    assert!(
        after.saturating_sub(before) < 40 * 1024,
        "peak RSS grew by {} KiB during a 200 MB upload",
        after - before
    );
    assert_eq!(count_files(&s.data_dir.join("media/objects")), 0);
    assert_eq!(count_files(&s.data_dir.join("media/spool")), 0);
    // The server is fine afterwards.
    s.send(&alice, &conv, "still here").await;
    s.stop().await;
}

#[tokio::test]
async fn expired_links_are_refused() {
    let Some(s) =
        TestServer::start_with(Backend::Sqlite, &[("CHAT_MEDIA_URL_TTL_SECS", "1")]).await
    else {
        return;
    };
    let alice = s.registered_user("alice").await;
    let bob = s.registered_user("bob").await;
    let conv = s.conversation(&alice, &bob).await;
    let m = s
        .upload(
            &alice,
            &conv,
            vec![("a.png", "image/png", files::png(8, 8))],
            &[],
        )
        .await;
    let url = m.expect(201)["media"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = fetch(&s, &url).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
    s.stop().await;
}
