//! End to end: JWT rules of the SPEC against the real binary.

use base64::Engine;
use chat_e2e::server::{mint_hs256, Backend, TestServer};
use chat_protocol::UserId;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::json;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn sign(alg: Algorithm, key: &EncodingKey, id: UserId, username: &str) -> String {
    let claims = json!({
        "sub": id.to_string(),
        "username": username,
        "exp": chrono::Utc::now().timestamp() + 600,
    });
    jsonwebtoken::encode(&Header::new(alg), &claims, key).unwrap()
}

async fn status_with(s: &TestServer, token: Option<&str>) -> (u16, String) {
    let r = s
        .request(Method::GET, token, "/chat/conversations", None)
        .await;
    (r.status.as_u16(), r.code().to_string())
}

#[tokio::test]
async fn bad_tokens_get_401_and_good_ones_provision_the_user() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let id = UserId::new();
    let ok = s.mint(id, "Dora", 600);
    assert_eq!(status_with(&s, Some(&ok)).await.0, 200);

    let unauthorized = (401, "unauthorized".to_string());
    assert_eq!(status_with(&s, None).await, unauthorized, "missing");
    assert_eq!(
        status_with(&s, Some("not.a.jwt")).await,
        unauthorized,
        "garbage"
    );
    assert_eq!(status_with(&s, Some("")).await, unauthorized, "empty");
    let expired = s.mint(id, "dora", -3600);
    assert_eq!(
        status_with(&s, Some(&expired)).await,
        unauthorized,
        "expired"
    );
    let forged = mint_hs256("some-other-secret", id, "dora", 600);
    assert_eq!(
        status_with(&s, Some(&forged)).await,
        unauthorized,
        "wrong key"
    );
    // Signature stripped / alg none.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none_header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let body = ok.split('.').nth(1).unwrap();
    for t in [
        format!("{none_header}.{body}."),
        format!("{none_header}.{body}"),
    ] {
        assert_eq!(status_with(&s, Some(&t)).await, unauthorized, "alg none");
    }
    let unsigned = ok.rsplit_once('.').unwrap().0.to_string() + ".";
    assert_eq!(
        status_with(&s, Some(&unsigned)).await,
        unauthorized,
        "unsigned"
    );
    // RS256 is not accepted when no public key is configured.
    let rsa =
        EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa_private.pem")).unwrap()).unwrap();
    let rs = sign(Algorithm::RS256, &rsa, id, "dora");
    assert_eq!(
        status_with(&s, Some(&rs)).await,
        unauthorized,
        "rs256 without key"
    );
    // sub must be a UUID; username must be valid.
    let bad_sub = jsonwebtoken::encode(
        &Header::default(),
        &json!({"sub": "42", "username": "x", "exp": chrono::Utc::now().timestamp() + 60}),
        &EncodingKey::from_secret(s.secret.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        status_with(&s, Some(&bad_sub)).await,
        unauthorized,
        "sub not uuid"
    );
    let bad_name = s.mint(UserId::new(), "no spaces allowed", 600);
    assert_eq!(
        status_with(&s, Some(&bad_name)).await,
        unauthorized,
        "bad username"
    );
    // Bearer scheme is case-insensitive.
    let r = s
        .http
        .get(s.url("/chat/conversations"))
        .header("authorization", format!("bearer {ok}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // Provisioned on first sight (username lower-cased), findable by others.
    let other = s.user("eve");
    let r = s.get(&other, "/chat/conversations/with/dora").await;
    let r = r.expect(201);
    assert_eq!(r["other_user"]["id"], id.to_string());
    assert_eq!(r["other_user"]["username"], "dora");
    // Someone else's token claiming the same username is a conflict, not a takeover.
    let thief = s.mint(UserId::new(), "dora", 600);
    let r = s
        .request(Method::GET, Some(&thief), "/chat/conversations", None)
        .await;
    r.expect_error(409, "conflict");
    s.stop().await;
}

#[tokio::test]
async fn rs256_and_eddsa_public_keys_are_accepted_when_configured() {
    for (public, private, alg) in [
        ("rsa_public.pem", "rsa_private.pem", Algorithm::RS256),
        (
            "ed25519_public.pem",
            "ed25519_private.pem",
            Algorithm::EdDSA,
        ),
    ] {
        let key_path = fixture(public);
        let s = TestServer::start_with(
            Backend::Sqlite,
            &[("CHAT_JWT_PUBLIC_KEY", key_path.to_str().unwrap())],
        )
        .await
        .unwrap();
        let pem = std::fs::read(fixture(private)).unwrap();
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ed_pem(&pem).unwrap(),
        };
        let id = UserId::new();
        let token = sign(alg, &key, id, "keyuser");
        assert_eq!(
            status_with(&s, Some(&token)).await.0,
            200,
            "{alg:?} accepted"
        );
        // HS256 with the secret still works beside it.
        assert_eq!(
            status_with(&s, Some(&s.mint(id, "keyuser", 60))).await.0,
            200
        );
        // A token signed by another key of the same kind is refused.
        let other_alg_token = match alg {
            Algorithm::RS256 => {
                let ed = EncodingKey::from_ed_pem(
                    &std::fs::read(fixture("ed25519_private.pem")).unwrap(),
                )
                .unwrap();
                sign(Algorithm::EdDSA, &ed, id, "keyuser")
            }
            _ => {
                let rsa =
                    EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa_private.pem")).unwrap())
                        .unwrap();
                sign(Algorithm::RS256, &rsa, id, "keyuser")
            }
        };
        assert_eq!(status_with(&s, Some(&other_alg_token)).await.0, 401);
        s.stop().await;
    }
}
