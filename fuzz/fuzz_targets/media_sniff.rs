//! Any upload's first bytes are typed or refused without a panic; what is typed as an
//! image or a video goes through the same processing an upload gets (decode, orientation,
//! thumbnail; container metadata), which must refuse bad bytes, never crash.
#![no_main]

use chat_server::media::{detect, process};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(found) = detect::detect(data) else {
        return;
    };
    let path = std::env::temp_dir().join(format!("chat-fuzz-{}", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if found.mime.starts_with("image/") {
        let _ = process::image(&path, found.mime, &process::ImageLimits::default());
    } else if found.mime.starts_with("video/") {
        let _ = process::video_info(&path, found.mime);
    }
    let _ = std::fs::remove_file(&path);
});
