#!/usr/bin/env bash
# `make bench-capacity`: how close a chat send comes to a bare durable insert on this host.
#
# 1. pgbench: a one-row durable INSERT into a small table, 8 and 32 clients, on the same
#    PostgreSQL, in the same sitting (the physical reference of this machine).
# 2. chat-loadgen against a release chatd on PostgreSQL + Redis (bench.sh's `postgres`
#    scenario), up a ladder of rates; the sustained rate is the highest whose delivery p99
#    is under CAPACITY_P99_MS (100) with nothing lost and the generator not the limit.
# 3. The ratio sustained / pgbench (issue 15 asks for at least 0.5), and per rate where each
#    message's CPU went (chatd, PostgreSQL, Redis, the generator; host idle and steal).
#
# Tunables: CAPACITY_RATES ("1000/s 2000/s 3000/s 4000/s 5000/s"), CAPACITY_P99_MS (100),
# CAPACITY_SECONDS (10, pgbench run length), BENCH_USERS, BENCH_DURATION (default here
# 15s), BENCH_RAMP (5s), BENCH_BIN_DIR. Results: target/bench-capacity/.
# Run it on an idle machine: no build, no other benchmark, no helper.
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=${CAPACITY_RATES:-1000/s 2000/s 3000/s 4000/s 5000/s}
P99=${CAPACITY_P99_MS:-100}
SECS=${CAPACITY_SECONDS:-10}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
OUT=target/bench-capacity
export BENCH_DURATION=${BENCH_DURATION:-15s} BENCH_RAMP=${BENCH_RAMP:-5s}

[ -n "${BENCH_BIN_DIR:-}" ] || cargo build --release -p chat-server -p chat-loadgen -p chatctl --bins
export BENCH_BIN_DIR=${BENCH_BIN_DIR:-target/release}
bash scripts/ensure-services.sh
rm -rf "$OUT" && mkdir -p "$OUT"

psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS chat_pgbench" >/dev/null
psql "$PG/postgres" -qc "CREATE DATABASE chat_pgbench" >/dev/null
psql "$PG/chat_pgbench" -qc "CREATE TABLE t (id bigserial PRIMARY KEY, body text NOT NULL)" >/dev/null
echo "INSERT INTO t (body) VALUES ('a message of about sixty-four bytes, like the load generator''s');" \
  >"$OUT/insert.sql"
best=0
# busy_ticks: user, nice, system, irq and softirq ticks of /proc/stat (not idle, I/O wait or
# steal), in USER_HZ (100/s).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }
for clients in 8 32; do
  b0=$(busy_ticks)
  tps=$(pgbench -n -h 127.0.0.1 -U postgres -f "$OUT/insert.sql" -c "$clients" -j 2 -T "$SECS" \
    chat_pgbench 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
  b1=$(busy_ticks)
  # Host CPU per insert (PostgreSQL and pgbench together), to set beside a chat send's.
  per=$(awk -v b="$((b1 - b0))" -v t="$tps" -v s="$SECS" 'BEGIN { if (t > 0) printf "%.0f", b * 10000 / (t * s) }')
  echo "pgbench one-row durable INSERT, $clients clients: ${tps%.*} tps (host CPU ~${per} µs per insert)"
  [ "${tps%.*}" -gt "$best" ] && best=${tps%.*}
done
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS chat_pgbench" >/dev/null

# batch_line DIR: chatd's group commits during the measured run (its /metrics after the run
# minus before it, as bench.sh saves them): how many, mean sends and mean time per commit.
batch_line() {
  [ -f "$1/postgres.before.metrics" ] && [ -f "$1/postgres.metrics" ] || return 0
  awk 'FNR == 1 { sign = (FILENAME == ARGV[1]) ? -1 : 1 }
    /^chat_send_batch_(size|seconds)_(sum|count) / { v[$1] += sign * $2 }
    END { n = v["chat_send_batch_size_count"]; if (n > 0)
      printf "  group commits: %d, mean %.1f sends, %.2f ms each (statement and durable commit)\n",
        n, v["chat_send_batch_size_sum"] / n, v["chat_send_batch_seconds_sum"] * 1000 / n }' \
    "$1/postgres.before.metrics" "$1/postgres.metrics"
}

sustained=0
for rate in $RATES; do
  out="$OUT/${rate%/*}"
  mkdir -p "$out"
  BENCH_OUT=$out BENCH_RATE=$rate BENCH_SCENARIOS=postgres bash scripts/bench.sh >"$out/run.log" 2>&1 || true
  r="$out/postgres.json"
  if [ ! -f "$r" ]; then
    echo "$rate: no result (see $out/run.log)"
    break
  fi
  read -r p50 p99 lost dup limited cpu < <(jq -r '[.metrics.delivery.p50_ms, .metrics.delivery.p99_ms,
      .lost, .duplicates, ((.generator.limited_by // []) | length),
      (.generator.cpu_cores // 0)] | @tsv' "$r")
  echo "$rate: delivery p50 $p50 ms, p99 $p99 ms, lost $lost, duplicates $dup, generator $cpu cores$([ "$limited" != 0 ] && echo ' (GENERATOR-LIMITED)')"
  # Where each message's CPU went (chat-loadgen --cpu-of): the 2-core budget in one line.
  jq -r 'if .host_cpu then "  CPU per message: " + ([.host_cpu.processes[] | "\(.name) \(.us_per_message | floor) µs"]
      | join(", ")) + ", chat-loadgen \(.generator.cpu_ms_per_1000_messages // 0 | floor) µs | host idle \(.host_cpu.idle_pct
      | floor) %, steal \(.host_cpu.steal_pct | floor) %" else empty end' "$r"
  batch_line "$out"
  if awk -v p="$p99" -v t="$P99" 'BEGIN { exit !(p < t) }' && [ "$lost" = 0 ] && [ "$dup" = 0 ] && [ "$limited" = 0 ]; then
    sustained=${rate%/*}
  else
    break
  fi
done

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
echo "sustained at delivery p99 < $P99 ms: $sustained msg/s; pgbench best: $best tps"
awk -v s="$sustained" -v b="$best" 'BEGIN { if (b > 0) printf "ratio sustained / pgbench: %.2f (target >= 0.50)\n", s / b }'
