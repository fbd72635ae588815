#!/usr/bin/env bash
# `make bench`: the standard chat-loadgen scenario against a local release chatd, on the
# embedded backend, on PostgreSQL + Redis, and on two instances sharing them.
#
# Tunables (environment): BENCH_USERS (1000), BENCH_RATE (500/s), BENCH_DURATION (30s),
# BENCH_RAMP (10s), BENCH_PG (postgres://postgres@127.0.0.1:5432), BENCH_REDIS
# (redis://127.0.0.1:6379), BENCH_SCENARIOS ("sqlite postgres cluster"), BENCH_EXTRA (more
# chat-loadgen arguments), BENCH_BIN_DIR (use chatd/chatctl/chat-loadgen from there instead
# of building; e.g. binaries of an older commit for a before/after), BENCH_OUT (target/bench),
# BENCH_PROCS (1; generator processes sharing the users and the rate), BENCH_LOADGEN (a
# chat-loadgen binary to drive the run instead of $BENCH_BIN_DIR's), BENCH_GEN_NICE (-10:
# the generator's niceness; 0 runs it at the server's priority), BENCH_ANALYZE_EVERY (seconds
# between checks for tables to VACUUM and ANALYZE while a PostgreSQL scenario runs; default 2 when the
# server's autovacuum is off, else 0 = none), BENCH_WARMUP (3s: an unmeasured run before
# each PostgreSQL scenario's, then ANALYZE; 0 = none).
# Results: $BENCH_OUT/<scenario>.json (compare two with `chat-loadgen compare A B`), and the
# server's /metrics after the run in $BENCH_OUT/<scenario>.metrics (cluster: cluster.1 and
# cluster.2; PostgreSQL scenarios also before the measured run, after the warm-up, in
# <scenario>.before.metrics).
set -euo pipefail
cd "$(dirname "$0")/.."

USERS=${BENCH_USERS:-1000}
RATE=${BENCH_RATE:-500/s}
DURATION=${BENCH_DURATION:-30s}
RAMP=${BENCH_RAMP:-10s}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
REDIS=${BENCH_REDIS:-redis://127.0.0.1:6379}
SCENARIOS=${BENCH_SCENARIOS:-sqlite postgres cluster}
SECRET="bench-secret-$RANDOM$RANDOM"
OUT=${BENCH_OUT:-target/bench}
BIN=${BENCH_BIN_DIR:-target/release}
CHATD=$BIN/chatd
LOADGEN=${BENCH_LOADGEN:-$BIN/chat-loadgen}
CHATCTL=$BIN/chatctl
EXTRA=${BENCH_EXTRA:-}
PROCS=${BENCH_PROCS:-1}
# The generator runs at a higher priority than the server and PostgreSQL it shares the
# cores with, so that it is not the one waiting for a CPU (its own lateness is reported
# and judged; see docs/benchmarks.md). Set BENCH_GEN_NICE=0 to run it as an equal.
GEN_NICE=${BENCH_GEN_NICE:--10}
if [ "$GEN_NICE" -lt 0 ] && ! nice -n "$GEN_NICE" true 2>/dev/null; then GEN_NICE=0; fi

[ -n "${BENCH_BIN_DIR:-}" ] || cargo build --release -p chat-server -p chat-loadgen -p chatctl --bins
bash scripts/ensure-services.sh
mkdir -p "$OUT"
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# start_chatd PORT DATA_DIR [extra env...]: start a chatd, wait until it is ready.
start_chatd() {
  local port=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  # The generator is one source address with up to 10,000 sockets: no per-address cap.
  env CHAT_LISTEN="127.0.0.1:$port" CHAT_DATA_DIR="$dir" CHAT_JWT_SECRET="$SECRET" \
    CHAT_MAX_CONNECTIONS_PER_ADDRESS=0 CHAT_LOG=warn "$@" "$CHATD" >"$dir/chatd.log" 2>&1 &
  PIDS+=($!)
  LAST_PID=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "chatd on port $port did not become ready; see $dir/chatd.log" >&2
  exit 1
}

# A fresh schema with generous limits (set before chatd starts): the scenario measures
# latency, not the abuse limits.
prepare() {
  env "$@" "$CHATCTL" migrate up >/dev/null
  for action in send_message create_conversation mark_read get_conversations get_messages; do
    env "$@" "$CHATCTL" ratelimit set "$action" 100000/min >/dev/null
  done
  # Actions of later builds (an older build in a before/after does not know them).
  for action in lookup edit_message react search; do
    env "$@" "$CHATCTL" ratelimit set "$action" 100000/min >/dev/null 2>&1 || true
  done
}

# BENCH_PROCS > 1 splits the users and the rate over that many chat-loadgen processes run
# at once (each keeps its own sockets under the per-process open-file limit); results go to
# $OUT/<scenario>-<i>.json and .log.
run_loadgen() {
  local name=$1
  shift
  # Where a message's CPU goes on this host, beside the generator's own (a generator of an
  # older build, e.g. in a before/after, may not know --cpu-of). One generator only: each
  # of several would divide the whole host's CPU by its own share of the messages.
  local cpu=()
  if [ "$PROCS" = 1 ] && "$LOADGEN" run --help 2>/dev/null | grep -q -- --cpu-of; then
    cpu=(--cpu-of chatd --cpu-of postgres --cpu-of redis-server)
  fi
  set -- "$@" "${cpu[@]}"
  echo "== $name: $USERS users, $RATE for $DURATION (ramp $RAMP), $PROCS generator process(es)"
  if [ "$PROCS" = 1 ]; then
    CHAT_JWT_SECRET="$SECRET" nice -n "$GEN_NICE" "$LOADGEN" run --users "$USERS" --rate "$RATE" \
      --duration "$DURATION" --ramp "$RAMP" --json "$OUT/$name.json" $EXTRA "$@" || true
    return
  fi
  local users=$((USERS / PROCS)) rate="$(( ${RATE%/*} / PROCS ))/${RATE#*/}" gens=()
  for i in $(seq 1 "$PROCS"); do
    CHAT_JWT_SECRET="$SECRET" nice -n "$GEN_NICE" "$LOADGEN" run --users "$users" --rate "$rate" \
      --duration "$DURATION" --ramp "$RAMP" --json "$OUT/$name-$i.json" $EXTRA "$@" \
      >"$OUT/$name-$i.log" 2>&1 &
    gens+=($!)
  done
  for g in "${gens[@]}"; do wait "$g" || true; done
  for i in $(seq 1 "$PROCS"); do echo "-- generator $i"; cat "$OUT/$name-$i.log"; done
}

# A production PostgreSQL has autovacuum on, and its statistics follow the tables; with it
# off (as on some CI machines) every table of a run stays un-analyzed, and PostgreSQL keeps
# the plans it made for empty tables: a prepared statement's generic plan is replaced only
# when statistics change (the send statement, planned after a dozen sends, then ran
# seq-scan plans; 1,000 msg/s collapsed to p99 12 s without statistics). Stand in for it
# while a scenario runs: every BENCH_ANALYZE_EVERY seconds, ANALYZE and VACUUM the tables
# autovacuum would, by its default thresholds (ANALYZE when changed rows exceed 50 + 10 %
# of the table; VACUUM when dead rows exceed 50 + 20 % or rows inserted since the last
# vacuum exceed 1,000 + 20 %), each at most once a minute (autovacuum_naptime), but looked
# at every 2 s so a fresh table's first statistics come at once. Needs PostgreSQL 13+.
ANALYZE_EVERY=${BENCH_ANALYZE_EVERY:-}
if [ -z "$ANALYZE_EVERY" ]; then
  case " $SCENARIOS " in
    *" postgres "*|*" cluster "*)
      AUTOVACUUM=$(psql "$PG/postgres" -Atc "SHOW autovacuum" 2>/dev/null || echo on)
      ANALYZE_EVERY=$([ "$AUTOVACUUM" = off ] && echo 2 || echo 0)
      [ "$ANALYZE_EVERY" = 0 ] || echo "autovacuum is off on $PG: bench.sh vacuums and analyzes" \
        "tables as autovacuum would, looking every ${ANALYZE_EVERY}s (BENCH_ANALYZE_EVERY=0: no statistics)"
      ;;
    *) ANALYZE_EVERY=0 ;;
  esac
fi
# analyze_while_running DB_URL: in the background, until the scenario's cleanup, which also
# ends a VACUUM still running (standin_stop). Errors go to $OUT/standin.log.
analyze_while_running() {
  [ "$ANALYZE_EVERY" != 0 ] || return 0
  (while sleep "$ANALYZE_EVERY"; do
    # ANALYZE first (cheap, and what plans need); VACUUM after, throttled as autovacuum's
    # workers are (vacuum_cost_delay 2 ms).
    { psql "$1" -Atc "SELECT format('ANALYZE %I;', relname) FROM pg_stat_user_tables
        WHERE n_mod_since_analyze > 50 + 0.1 * n_live_tup
          AND COALESCE(last_analyze, '-infinity') < now() - interval '1 minute'"
      echo "SET vacuum_cost_delay = 2;"
      psql "$1" -Atc "SELECT format('VACUUM %I;', relname) FROM pg_stat_user_tables
        WHERE (n_dead_tup > 50 + 0.2 * n_live_tup OR n_ins_since_vacuum > 1000 + 0.2 * n_live_tup)
          AND COALESCE(last_vacuum, '-infinity') < now() - interval '1 minute'"
    } 2>>"$OUT/standin.log" | PGAPPNAME=bench_standin psql "$1" -q >/dev/null 2>>"$OUT/standin.log" || true
  done) &
  PIDS+=($!)
}

# warm_up SERVER DB_URL: a short unmeasured run on the fresh database, then ANALYZE, so the
# measured run starts on a database that has seen traffic and has statistics, as a
# production one has. Without it the first seconds ran plans PostgreSQL made for empty
# tables (delivery p99 ~300 ms for 2 s at 1,500 msg/s, then 15-30 ms; docs/benchmarks.md
# session 18). Its users have their own random prefix, as every run's do.
WARMUP=${BENCH_WARMUP:-3s}
warm_up() {
  [ "$WARMUP" != 0 ] || return 0
  CHAT_JWT_SECRET="$SECRET" "$LOADGEN" run --server "$1" --users 100 --rate 200/s \
    --duration "$WARMUP" --ramp 1s --no-realtime >"$OUT/warmup.log" 2>&1 || true
  psql "$2" -qc "ANALYZE" >/dev/null 2>&1 || true
}

# End the stand-in's statements still running (a throttled VACUUM outlives its loop).
standin_stop() {
  [ "$ANALYZE_EVERY" != 0 ] || return 0
  psql "$PG/postgres" -qAtc "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE application_name = 'bench_standin'" >/dev/null 2>&1 || true
}

# save_metrics NAME URL: the server's /metrics after the run, for its own view of the time
# (send_batch_seconds: statement and durable commit; bus_lag_seconds: the pub/sub hop).
save_metrics() {
  curl -sf "$2/metrics" >"$OUT/$1.metrics" 2>/dev/null || rm -f "$OUT/$1.metrics"
}

fresh_pg_db() {
  # FORCE: anything of the last scenario still connected.
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS chat_bench WITH (FORCE)" >/dev/null
  psql "$PG/postgres" -qc "CREATE DATABASE chat_bench" >/dev/null
  echo "$PG/chat_bench"
}

for s in $SCENARIOS; do
  case $s in
    sqlite)
      rm -rf "$OUT/sqlite-data" && mkdir -p "$OUT/sqlite-data"
      prepare CHAT_DATA_DIR="$OUT/sqlite-data"
      start_chatd 18181 "$OUT/sqlite-data"
      run_loadgen sqlite --server http://127.0.0.1:18181 --server-pid "$LAST_PID"
      save_metrics sqlite http://127.0.0.1:18181
      ;;
    postgres)
      db=$(fresh_pg_db)
      prepare CHAT_DATABASE_URL="$db"
      start_chatd 18182 "$OUT/pg-data" CHAT_DATABASE_URL="$db" CHAT_REDIS_URL="$REDIS" \
        CHAT_REDIS_PREFIX=bench: CHAT_DB_MAX_CONNECTIONS=20
      warm_up http://127.0.0.1:18182 "$db"
      analyze_while_running "$db"
      save_metrics postgres.before http://127.0.0.1:18182
      run_loadgen postgres --server http://127.0.0.1:18182 --server-pid "$LAST_PID"
      save_metrics postgres http://127.0.0.1:18182
      ;;
    cluster)
      db=$(fresh_pg_db)
      prepare CHAT_DATABASE_URL="$db"
      start_chatd 18183 "$OUT/c1-data" CHAT_DATABASE_URL="$db" CHAT_REDIS_URL="$REDIS" \
        CHAT_REDIS_PREFIX=bench2: CHAT_DB_MAX_CONNECTIONS=20
      p1=$LAST_PID
      start_chatd 18184 "$OUT/c2-data" CHAT_DATABASE_URL="$db" CHAT_REDIS_URL="$REDIS" \
        CHAT_REDIS_PREFIX=bench2: CHAT_DB_MAX_CONNECTIONS=20
      warm_up http://127.0.0.1:18183 "$db"
      analyze_while_running "$db"
      save_metrics cluster.1.before http://127.0.0.1:18183
      save_metrics cluster.2.before http://127.0.0.1:18184
      run_loadgen cluster --server http://127.0.0.1:18183,http://127.0.0.1:18184 \
        --server-pid "$p1" --server-pid "$LAST_PID"
      save_metrics cluster.1 http://127.0.0.1:18183
      save_metrics cluster.2 http://127.0.0.1:18184
      ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
  cleanup
  standin_stop
  PIDS=()
done
echo "results in $OUT/*.json"
