//! Any `before`/`after` query value decodes to a cursor or `invalid_cursor`, never a panic;
//! a decoded cursor encodes back to something that decodes to itself.
#![no_main]

use chat_server::domain::types::Cursor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    if let Ok(c) = Cursor::decode(&raw) {
        assert_eq!(Cursor::decode(&c.encode()).ok(), Some(c));
    }
});
