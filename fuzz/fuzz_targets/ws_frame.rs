//! Any text a client can send as a WebSocket frame decodes to an event or a SPEC error;
//! never a panic, and an accepted frame survives a serialise/parse round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(event) = chat_server::http::ws::decode_frame(&text) {
        let again = serde_json::to_string(&event).expect("an event serialises");
        assert_eq!(chat_server::http::ws::decode_frame(&again).ok(), Some(event));
    }
});
