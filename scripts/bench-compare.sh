#!/usr/bin/env bash
# `make bench-compare BASE=<commit>`: build BASE and the working tree (release), run one
# bench.sh scenario with each, alternating base / new at every rate of a ladder, each pair
# COMPARE_ROUNDS times, and print both sides per run with the ratio new/base.
#
# Tunables (environment): BASE (required), COMPARE_RATES ("500/s 1000/s 2000/s"),
# COMPARE_ROUNDS (2), COMPARE_SCENARIO (postgres: one of bench.sh's scenarios),
# COMPARE_LOADGEN (new: the working tree's generator drives both sides, so only chatd
# differs; each: each build drives itself), plus bench.sh's BENCH_USERS, BENCH_DURATION,
# BENCH_RAMP, BENCH_EXTRA. Results: target/bench-compare/<rate>/<round>/<side>/.
# Run it on an idle machine: no build, no other benchmark, no helper.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:?give the commit to compare with: BASE=<commit>}
RATES=${COMPARE_RATES:-500/s 1000/s 2000/s}
ROUNDS=${COMPARE_ROUNDS:-2}
SCENARIO=${COMPARE_SCENARIO:-postgres}
WHICH_LOADGEN=${COMPARE_LOADGEN:-new}
OUT=target/bench-compare
BINS=target/bench-bin
TOP=$PWD

sha=$(git rev-parse --short "$BASE")
build() {
  cargo build --release -p chat-server -p chat-loadgen -p chatctl --bins
  mkdir -p "$1"
  cp target/release/chatd target/release/chatctl target/release/chat-loadgen "$1/"
}
if [ ! -x "$BINS/$sha/chatd" ]; then
  wt=$(mktemp -d)/base
  git worktree add --detach "$wt" "$BASE" >/dev/null
  # The shared target directory keeps the dependencies built once.
  (cd "$wt" && CARGO_TARGET_DIR="$TOP/target" cargo build --release \
    -p chat-server -p chat-loadgen -p chatctl --bins)
  mkdir -p "$BINS/$sha"
  cp target/release/chatd target/release/chatctl target/release/chat-loadgen "$BINS/$sha/"
  git worktree remove --force "$wt"
  # Cargo keeps workspace sources' paths relative to the workspace root and judges them by
  # mtime: after the older checkout's build, this tree's unchanged files look older than
  # the artifacts. Touch them so the next build is of this tree.
  find protocol client server cli tui-client loadgen tests -name '*.rs' -exec touch {} +
fi
build "$BINS/new"

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
echo "base $sha vs the working tree ($(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')); scenario $SCENARIO; generator: $WHICH_LOADGEN"
rm -rf "$OUT"
for rate in $RATES; do
  for round in $(seq 1 "$ROUNDS"); do
    for side in base new; do
      dir=$BINS/new
      [ "$side" = base ] && dir=$BINS/$sha
      loadgen=$BINS/new/chat-loadgen
      [ "$WHICH_LOADGEN" = each ] && loadgen=$dir/chat-loadgen
      out="$OUT/${rate%/*}/$round/$side"
      mkdir -p "$out"
      BENCH_BIN_DIR=$dir BENCH_LOADGEN=$loadgen BENCH_OUT=$out BENCH_RATE=$rate \
        BENCH_SCENARIOS=$SCENARIO bash scripts/bench.sh >"$out/run.log" 2>&1 || true
    done
  done
done

# One line per run pair: delivery p50/p99 of each side, the p99 ratio, loss and the
# generator's CPU per 1,000 messages (when the generator reports it).
row() {
  jq -r '[(.metrics.delivery.p50_ms // -1), (.metrics.delivery.p99_ms // -1), .lost, .duplicates,
          (.generator.cpu_ms_per_1000_messages // -1), ((.generator.limited_by // []) | length)]
         | @tsv' "$1"
}
printf '\n%-8s %-5s | %9s %9s %6s %9s | %9s %9s %6s %9s | %7s\n' rate round \
  "base p50" "base p99" lost "gen cpu" "new p50" "new p99" lost "gen cpu" "p99 n/b"
for rate in $RATES; do
  for round in $(seq 1 "$ROUNDS"); do
    b="$OUT/${rate%/*}/$round/base/$SCENARIO.json"
    n="$OUT/${rate%/*}/$round/new/$SCENARIO.json"
    if [ ! -f "$b" ] || [ ! -f "$n" ]; then
      echo "$rate round $round: a run left no result (see $OUT/${rate%/*}/$round/*/run.log)"
      continue
    fi
    read -r bp50 bp99 blost _ bcpu blim < <(row "$b")
    read -r np50 np99 nlost _ ncpu nlim < <(row "$n")
    ratio=$(awk -v b="$bp99" -v n="$np99" 'BEGIN { if (b > 0) printf "%.2f", n / b; else print "-" }')
    flag=""
    [ "${blim:-0}" != 0 ] && flag="$flag base generator-limited;"
    [ "${nlim:-0}" != 0 ] && flag="$flag new generator-limited;"
    printf '%-8s %-5s | %9.2f %9.2f %6s %9.1f | %9.2f %9.2f %6s %9.1f | %7s %s\n' "$rate" "$round" \
      "$bp50" "$bp99" "$blost" "$bcpu" "$np50" "$np99" "$nlost" "$ncpu" "$ratio" "$flag"
  done
done
echo "(ms; gen cpu = generator CPU ms per 1,000 messages, -1 = not reported)"
