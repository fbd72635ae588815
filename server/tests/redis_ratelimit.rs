//! Rate limits through a real Redis, as several instances share them: a user's concurrent
//! checks on two instances get exactly the limit between them, and many users' and
//! actions' checks in flight at once are each judged on their own key and setting.

use std::time::Duration;

use chat_protocol::UserId;
use chat_server::error::Error;
use chat_server::ratelimit::{Action, RateLimiter};
use chat_server::redis_breaker::{Breaker, GuardedConnection};
use chat_server::store::RateLimitSetting;

/// One instance's limiter on `prefix`: `send_message` at `max` per hour, `get_messages`
/// at `max + 1` per minute (another key, another emission interval and tolerance).
async fn instance(url: &str, prefix: &str, max: u32) -> RateLimiter {
    let client = redis::Client::open(url).expect("redis url");
    let conn = redis::aio::ConnectionManager::new(client)
        .await
        .expect("redis connection");
    let limits =
        RateLimiter::new().with_redis(GuardedConnection::new(conn, Breaker::default()), prefix);
    limits.apply(&[
        (
            "send_message".into(),
            RateLimitSetting {
                max_requests: max,
                period_seconds: 3600,
            },
        ),
        (
            "get_messages".into(),
            RateLimitSetting {
                max_requests: max + 1,
                period_seconds: 60,
            },
        ),
    ]);
    limits
}

/// Run `checks` concurrently; how many were allowed, with every refusal checked.
async fn allowed(checks: Vec<(RateLimiter, Action, UserId)>) -> usize {
    let tasks: Vec<_> = checks
        .into_iter()
        .map(|(limits, action, user)| tokio::spawn(async move { limits.check(action, user).await }))
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("check task") {
            Ok(()) => ok += 1,
            // The wait is until one unit comes back: at most a period (an hour for sends,
            // a minute for reads).
            Err(Error::RateLimited { retry_after }) => assert!(
                retry_after > Duration::ZERO && retry_after <= Duration::from_secs(3600),
                "retry after {retry_after:?}"
            ),
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checks_of_one_user_on_two_instances_get_exactly_the_limit() {
    let Some(url) = chat_e2e::redis_url() else {
        return;
    };
    let prefix = format!("ratelimit-test-{}:", uuid::Uuid::new_v4().simple());
    let (a, b) = (
        instance(&url, &prefix, 5).await,
        instance(&url, &prefix, 5).await,
    );
    let alice = UserId::new();
    // 60 checks at once, half on each instance.
    let checks = (0..60)
        .map(|i| {
            let limits = if i % 2 == 0 { a.clone() } else { b.clone() };
            (limits, Action::SendMessage, alice)
        })
        .collect();
    assert_eq!(allowed(checks).await, 5, "5 per hour across both instances");
    // Still refused afterwards, on either instance.
    assert!(a.check(Action::SendMessage, alice).await.is_err());
    assert!(b.check(Action::SendMessage, alice).await.is_err());
    // Another user is untouched by alice's spent budget.
    assert!(a.check(Action::SendMessage, UserId::new()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_and_action_in_flight_at_once_is_judged_on_its_own() {
    let Some(url) = chat_e2e::redis_url() else {
        return;
    };
    let prefix = format!("ratelimit-test-{}:", uuid::Uuid::new_v4().simple());
    let limits = instance(&url, &prefix, 2).await;
    let users: Vec<UserId> = (0..300).map(|_| UserId::new()).collect();
    // Per user three sends (2 allowed) and four reads (3 allowed), interleaved, all at
    // once: 2,100 checks of two settings in flight together.
    let checks = [Action::GetMessages, Action::SendMessage]
        .into_iter()
        .cycle()
        .take(7)
        .flat_map(|action| users.iter().map(move |u| (action, *u)))
        .map(|(action, u)| (limits.clone(), action, u))
        .collect();
    assert_eq!(
        allowed(checks).await,
        300 * 5,
        "2 sends and 3 reads per user"
    );
    // The budgets are in Redis, not in this instance: another instance sees them spent
    // (an in-process fallback would have passed everything above too, but not this).
    let other = instance(&url, &prefix, 2).await;
    for u in &users {
        assert!(
            other.check(Action::SendMessage, *u).await.is_err(),
            "a third send for {u}"
        );
        assert!(
            other.check(Action::GetMessages, *u).await.is_err(),
            "a fourth read for {u}"
        );
    }
}
