//! Presence through a real Redis when an instance dies: it cannot settle its users'
//! departures, so their keys must expire on their own. The test stops refreshing (what a
//! crashed instance does), checks both keys carry the TTL, then lets Redis run that TTL
//! out (PEXPIRE to a few milliseconds: the same expiry, without a 60 s wait) and reads
//! the user back as offline from another instance's view of Redis.

use std::time::Duration;

use chat_protocol::UserId;
use chat_server::domain::presence::{Presence, ONLINE_TTL_SECS};
use chat_server::realtime::redis_presence::{online_key, RedisPresence};
use chat_server::redis_breaker::{Breaker, GuardedConnection};

async fn presence(url: &str, prefix: &str) -> (RedisPresence, redis::aio::ConnectionManager) {
    let client = redis::Client::open(url).expect("redis url");
    let conn = redis::aio::ConnectionManager::new(client)
        .await
        .expect("redis connection");
    let guarded = GuardedConnection::new(conn.clone(), Breaker::default());
    (RedisPresence::new(guarded, prefix), conn)
}

#[tokio::test]
async fn a_crashed_instances_users_go_offline_when_their_keys_expire() {
    let Some(url) = chat_e2e::redis_url() else {
        return;
    };
    let prefix = format!("presence-test-{}:", uuid::Uuid::new_v4().simple());
    let (crashed, mut raw) = presence(&url, &prefix).await;
    let (survivor, _) = presence(&url, &prefix).await;
    let (alice, bob) = (UserId::new(), UserId::new());
    assert!(crashed.connect(alice).await, "alice comes online");
    assert!(survivor.connect(bob).await, "bob comes online");
    assert_eq!(survivor.online(&[alice, bob]).await.len(), 2);

    // The instance holding alice's socket dies: no disconnect, no settle, no refresh.
    drop(crashed);
    let sockets_key = format!("{prefix}sockets:{alice}");
    for key in [online_key(&prefix, alice), sockets_key.clone()] {
        let ttl: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut raw)
            .await
            .expect("TTL");
        assert!(
            (1..=ONLINE_TTL_SECS as i64).contains(&ttl),
            "{key} must expire on its own, TTL {ttl}"
        );
        let _: bool = redis::cmd("PEXPIRE")
            .arg(&key)
            .arg(5)
            .query_async(&mut raw)
            .await
            .expect("PEXPIRE");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while survivor.online(&[alice]).await.contains(&alice) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice still online after her keys expired"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Bob, refreshed by a live instance, stays; alice coming back is news again.
    survivor.refresh(bob).await;
    assert!(survivor.online(&[bob]).await.contains(&bob));
    assert!(survivor.connect(alice).await, "alice is online again");
    let _: () = redis::cmd("EVAL")
        .arg("for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end")
        .arg(0)
        .arg(format!("{prefix}*"))
        .query_async(&mut raw)
        .await
        .expect("clean up");
}
