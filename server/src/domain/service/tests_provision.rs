//! Provisioning after the trust period: a read checks a known identity, only a new user,
//! a rename or an erased account takes the upsert.

use super::*;

const SECRET: &[u8] = b"a test secret of thirty-two bytes!";

/// Authenticate `id` as `name` with a fresh token.
async fn login(w: &World, id: UserId, name: &str) -> Result<AuthUser> {
    let keys = JwtKeys::from_secret(SECRET).expect("keys");
    let token = keys
        .issue(id, name, chrono::Duration::hours(1))
        .expect("token");
    w.service.authenticate(&keys, &token).await
}

/// The stored row of `id`, if any.
async fn stored(w: &World, id: UserId) -> Option<crate::store::User> {
    w.temp.store.user_by_id(id).await.expect("read")
}

#[tokio::test]
async fn known_identities_are_rechecked_by_a_read_and_erased_ones_refused() {
    let w = World::new().await;
    // Users this service has not seen (another instance made them, or this one restarted).
    let hour_ago = now() - chrono::Duration::hours(1);
    let alice = UserId::new();
    let bob = UserId::new();
    for (id, name) in [(alice, "alice"), (bob, "bob")] {
        w.temp
            .store
            .upsert_user(id, name, hour_ago)
            .await
            .expect("user");
    }
    let me = login(&w, alice, "alice").await.expect("a known user");
    assert_eq!(me.id, alice);
    // No upsert: it would have set last_seen_at to now in the request's path (the
    // background touch never moves it back).
    let dave = UserId::new();
    let ahead = now() + chrono::Duration::hours(1);
    w.temp
        .store
        .upsert_user(dave, "dave", ahead)
        .await
        .expect("user");
    login(&w, dave, "dave").await.expect("a known user");
    let seen = stored(&w, dave).await.expect("dave");
    assert_eq!(
        seen.last_seen_at,
        Some(ahead),
        "a known user was written again"
    );
    // last_seen_at follows in the background.
    let mut moved = false;
    for _ in 0..200 {
        let u = stored(&w, alice).await;
        if u.and_then(|u| u.last_seen_at).is_some_and(|t| t > hour_ago) {
            moved = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(moved, "last_seen_at was not touched");

    // A new name is a rename (the upsert), a new id a new user.
    login(&w, bob, "bobby").await.expect("rename");
    assert_eq!(stored(&w, bob).await.expect("bob").username, "bobby");
    let carol = UserId::new();
    login(&w, carol, "carol").await.expect("first sight");
    assert!(stored(&w, carol).await.is_some());

    // Erased elsewhere: trusted until the cache entry is due, then refused.
    w.temp.store.erase_user(alice, now()).await.expect("erase");
    assert!(login(&w, alice, "alice").await.is_ok());
    tokio::time::pause();
    tokio::time::advance(PROVISION_TTL + std::time::Duration::from_secs(1)).await;
    tokio::time::resume();
    let err = login(&w, alice, "alice").await.expect_err("erased");
    assert!(matches!(err, Error::Unauthorized(_)), "{err:?}");
    w.done().await;
}
