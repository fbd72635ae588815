//! Any bearer token is accepted or refused, never a panic; with the fuzzer not knowing the
//! secret, nothing it makes may be accepted.
#![no_main]

use chat_server::auth::JwtKeys;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn keys() -> &'static JwtKeys {
    static KEYS: OnceLock<JwtKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        JwtKeys::from_secret(b"fuzz-secret-0123456789abcdef0123456789abcdef").expect("keys")
    })
}

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    assert!(
        keys().verify(&token).is_err(),
        "a forged token was accepted: {token}"
    );
});
