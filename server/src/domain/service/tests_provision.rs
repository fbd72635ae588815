//! Provisioning after the trust period: a read checks a known identity, only a new user,
//! a rename or an erased account takes the upsert.

use super::*;

#[tokio::test]
async fn known_identities_are_rechecked_by_a_read_and_erased_ones_refused() {
    let w = World::new().await;
    let keys = JwtKeys::from_secret(b"a test secret of thirty-two bytes!").expect("keys");
    let token = |id: UserId, name: &str| {
        keys.issue(id, name, chrono::Duration::hours(1))
            .expect("token")
    };
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
    let me = w
        .service
        .authenticate(&keys, &token(alice, "alice"))
        .await
        .expect("a known user");
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
    w.service
        .authenticate(&keys, &token(dave, "dave"))
        .await
        .expect("a known user");
    let seen = w
        .temp
        .store
        .user_by_id(dave)
        .await
        .expect("read")
        .expect("dave");
    assert_eq!(
        seen.last_seen_at,
        Some(ahead),
        "a known user was written again"
    );
    // last_seen_at follows in the background.
    let mut moved = false;
    for _ in 0..200 {
        let u = w.temp.store.user_by_id(alice).await.expect("read");
        if u.and_then(|u| u.last_seen_at).is_some_and(|t| t > hour_ago) {
            moved = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(moved, "last_seen_at was not touched");

    // A new name is a rename (the upsert), a new id a new user.
    w.service
        .authenticate(&keys, &token(bob, "bobby"))
        .await
        .expect("rename");
    let renamed = w
        .temp
        .store
        .user_by_id(bob)
        .await
        .expect("read")
        .expect("bob");
    assert_eq!(renamed.username, "bobby");
    let carol = UserId::new();
    w.service
        .authenticate(&keys, &token(carol, "carol"))
        .await
        .expect("first sight");
    assert!(w
        .temp
        .store
        .user_by_id(carol)
        .await
        .expect("read")
        .is_some());

    // Erased elsewhere: trusted until the cache entry is due, then refused.
    w.temp.store.erase_user(alice, now()).await.expect("erase");
    assert!(w
        .service
        .authenticate(&keys, &token(alice, "alice"))
        .await
        .is_ok());
    tokio::time::pause();
    tokio::time::advance(PROVISION_TTL + std::time::Duration::from_secs(1)).await;
    tokio::time::resume();
    let err = w
        .service
        .authenticate(&keys, &token(alice, "alice"))
        .await
        .expect_err("erased");
    assert!(matches!(err, Error::Unauthorized(_)), "{err:?}");
    w.done().await;
}
