#!/usr/bin/env bash
# `make media-bench`: media upload throughput and latency (2 MB JPEG, re-encoded and
# thumbnailed) and chatd's peak memory during a 100 MB video upload, on a fresh embedded
# chatd (release build). Tunables: MEDIA_COUNT (100), MEDIA_CONCURRENCY (4).
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${MEDIA_COUNT:-100}
CONC=${MEDIA_CONCURRENCY:-4}
DIR=target/media-bench
SECRET="bench-secret-$RANDOM$RANDOM"
PORT=18290

cargo build --release -p chat-server -p chat-loadgen -p chatctl --bins
rm -rf "$DIR" && mkdir -p "$DIR"
cargo run -q --release -p chat-e2e --example gen_media -- photo "$DIR/photo.jpg" 2000000
cargo run -q --release -p chat-e2e --example gen_media -- video "$DIR/video.mp4" 99

export CHAT_DATA_DIR="$DIR/data" CHAT_JWT_SECRET="$SECRET"
target/release/chatctl migrate up >/dev/null
target/release/chatctl ratelimit set send_message 100000/min >/dev/null
target/release/chatctl ratelimit set create_conversation 100000/min >/dev/null

run_chatd() {
  CHAT_LISTEN="127.0.0.1:$PORT" CHAT_LOG=warn target/release/chatd >"$DIR/chatd.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "chatd did not start; see $DIR/chatd.log" >&2
  exit 1
}
trap 'kill $PID 2>/dev/null || true' EXIT

echo "== 2 MB JPEG, $COUNT uploads, $CONC in flight"
run_chatd
target/release/chat-loadgen media --server "http://127.0.0.1:$PORT" --file "$DIR/photo.jpg" \
  --count "$COUNT" --concurrency "$CONC" --server-pid "$PID"
kill "$PID"; wait "$PID" 2>/dev/null || true

# A fresh process, so its peak RSS (VmHWM) belongs to the video upload alone.
echo "== 99 MiB MP4 (just under the 100 MiB video limit), one upload"
run_chatd
target/release/chat-loadgen media --server "http://127.0.0.1:$PORT" --file "$DIR/video.mp4" \
  --count 1 --concurrency 1 --server-pid "$PID"
