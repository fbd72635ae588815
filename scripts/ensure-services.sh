#!/usr/bin/env bash
# Make sure the local PostgreSQL and Redis that the tests use are up, starting them
# when they are down, and drop test databases left behind by an interrupted run.
set -euo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
fi
if ! pg_up; then
  echo "PostgreSQL is not reachable on 127.0.0.1:5432 (needed for the PostgreSQL tests)" >&2
  [ "${CI:-}" = "true" ] && exit 1
fi

if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
    for _ in $(seq 1 30); do redis_up && break; sleep 0.5; done
  fi
fi
if ! redis_up; then
  echo "Redis is not reachable on 127.0.0.1:6379 (needed for the Redis tests)" >&2
  [ "${CI:-}" = "true" ] && exit 1
fi

# A local S3 (moto's server mode) for the S3 media tests, on 127.0.0.1:5000.
s3_up() { curl -s -o /dev/null "http://127.0.0.1:5000/" 2>/dev/null; }
if ! s3_up; then
  if ! command -v moto_server >/dev/null 2>&1; then
    echo "installing moto (local S3 server for the tests)"
    python3 -m pip install --quiet "moto[server]" || true
  fi
  if command -v moto_server >/dev/null 2>&1; then
    echo "starting moto_server"
    nohup moto_server -H 127.0.0.1 -p 5000 >/tmp/moto_server.log 2>&1 &
    for _ in $(seq 1 50); do s3_up && break; sleep 0.2; done
  fi
fi
if ! s3_up; then
  echo "no S3 server on 127.0.0.1:5000 (needed for the S3 media tests)" >&2
  [ "${CI:-}" = "true" ] && exit 1
fi

# ffmpeg makes video poster frames (chatd works without it; the poster test needs it);
# tmux hosts the real-terminal run of chat-tui in the end-to-end tests.
for tool in ffmpeg tmux; do
  if ! command -v "$tool" >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing $tool"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$tool" >"/tmp/apt-$tool.log" 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$tool" >"/tmp/apt-$tool.log" 2>&1; } || true
  fi
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$tool is not installed (needed by the end-to-end tests)" >&2
    [ "${CI:-}" = "true" ] && exit 1
  fi
done

# Leftovers from interrupted test runs (every test database is named chat_t_<random>).
if pg_up && command -v psql >/dev/null 2>&1; then
  psql "${CHAT_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}" -Atqc \
    "SELECT datname FROM pg_database WHERE datname LIKE 'chat\_t\_%'" 2>/dev/null |
    while read -r db; do
      psql "${CHAT_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}" -qc \
        "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    done
fi
exit 0
