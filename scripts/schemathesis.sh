#!/usr/bin/env bash
# Property-based test of the REST API against its own OpenAPI document (make schemathesis,
# part of make test): a fresh chatd on the embedded backend (SQLite in a temp dir, loopback,
# a free port, per-user rate limits lifted), a valid token, a second user, a conversation,
# a text and an image message and a push subscription so that path parameters can name
# real things; then schemathesis generates requests from /openapi.json and fails on any
# 5xx or any response (status, content type, headers, body) that the document does not
# describe, on an authenticated operation that answers without a token, and on an
# undocumented method that is not refused with 405.
#
# Needs python3 with venv and pip: schemathesis (pinned) is installed from PyPI into
# target/schemathesis-venv on first use. A missing python is a failure, never a skip.
# Tunables: SCHEMATHESIS_MAX_EXAMPLES (per operation), SCHEMATHESIS_SEED, CHATD_BIN,
# CHATCTL_BIN (default target/debug/{chatd,chatctl}; `make build` makes them). Arguments
# are passed on to `schemathesis run` (e.g. `--report har` to see every exchange).
set -euo pipefail

cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-100}
SEED=${SCHEMATHESIS_SEED:-20261125}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
VENV=$TARGET_DIR/schemathesis-venv
CHATD=${CHATD_BIN:-$TARGET_DIR/debug/chatd}
CHATCTL=${CHATCTL_BIN:-$TARGET_DIR/debug/chatctl}

fail() {
    echo "schemathesis.sh: $*" >&2
    exit 1
}

command -v python3 >/dev/null 2>&1 || fail "python3 is required (apt-get install python3 python3-venv)"
for bin in "$CHATD" "$CHATCTL"; do
    [ -x "$bin" ] || fail "$bin not found; run \`make build\` first"
done

# --- schemathesis, pinned, in a private venv -------------------------------------------
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION"; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || fail "python3 -m venv failed (apt-get install python3-venv)"
    PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION" ||
        fail "cannot install schemathesis $SCHEMATHESIS_VERSION from PyPI"
fi

# --- a private chatd ------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/chatd-schemathesis.XXXXXX")
CHATD_PID=
cleanup() {
    if [ -n "$CHATD_PID" ] && kill -0 "$CHATD_PID" 2>/dev/null; then
        kill -TERM "$CHATD_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$CHATD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CHATD_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

export CHAT_DATA_DIR=$WORK/data
export CHAT_DATABASE_URL=sqlite://$WORK/data/chat.db
export CHAT_JWT_SECRET=schemathesis-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export CHAT_LOG=${CHAT_LOG:-warn}
# Web Push configured (a fixed test key) so that /chat/push/vapid-public-key answers 200.
# Nothing is ever pushed: no user the fuzzer acts as receives a message.
export CHAT_VAPID_PRIVATE_KEY=AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA
unset CHAT_REDIS_URL CHAT_PUBLIC_URL CHAT_MEDIA_STORE CHAT_MEDIA_DIR CHAT_PUSH_WEBHOOK_URL
mkdir -p "$CHAT_DATA_DIR"

"$CHATCTL" migrate >/dev/null
# The fuzzer sends thousands of requests a minute from one user: lift the per-user limits
# for this private server (429 stays documented on the operations that can answer it).
# The list's rates come first; the standing caps follow a blank line.
for action in $("$CHATCTL" ratelimit list | awk 'NF == 0 { exit } { print $1 }'); do
    "$CHATCTL" ratelimit set "$action" 1000000/min >/dev/null
done
TOKEN=$("$CHATCTL" token issue st-alice --ttl 2h 2>/dev/null)
"$CHATCTL" token issue st-bob --ttl 2h >/dev/null 2>&1

CHAT_LISTEN=127.0.0.1:0 "$CHATD" >"$WORK/chatd.out" 2>"$WORK/chatd.err" &
CHATD_PID=$!
BASE=
for _ in $(seq 600); do
    BASE=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/chatd.out" 2>/dev/null | head -n1 || true)
    [ -n "$BASE" ] && break
    kill -0 "$CHATD_PID" 2>/dev/null || { cat "$WORK/chatd.err" >&2; fail "chatd exited before it was ready"; }
    sleep 0.1
done
[ -n "$BASE" ] || fail "chatd was not ready within 60 s"
echo "chatd at $BASE (data in $WORK)"

# Real ids for the path parameters: a conversation with st-bob, a message in it, a push
# subscription, and a signed media URL (an image message).
IDS=$(BASE=$BASE TOKEN=$TOKEN python3 - <<'EOF'
import json, os, struct, urllib.parse, urllib.request, zlib

base, token = os.environ["BASE"], os.environ["TOKEN"]

def call(method, path, body=None, content_type="application/json"):
    req = urllib.request.Request(base + path, method=method)
    req.add_header("Authorization", "Bearer " + token)
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, data, timeout=30) as resp:
        return json.load(resp)

def png(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))

conv = call("GET", "/chat/conversations/with/st-bob")["id"]
msg = call("POST", f"/chat/conversations/{conv}/messages", {"content": "hello https://example.com"})["id"]
sub = call("POST", "/chat/push/subscriptions", {"kind": "fcm", "token": "schemathesis"})["id"]
boundary = "schemathesis-fixture"
form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
        "Content-Type: image/png\r\n\r\n").encode() + png(4, 3) + f"\r\n--{boundary}--\r\n".encode()
image = call("POST", f"/chat/conversations/{conv}/messages", form,
             f"multipart/form-data; boundary={boundary}")
url = urllib.parse.urlsplit(image["media"][0]["url"])
key = url.path.rsplit("/", 1)[1]
query = dict(urllib.parse.parse_qsl(url.query))
print(conv, msg, sub, key, query["exp"], query["sig"])
EOF
) || fail "could not create the fixtures (see $WORK/chatd.err)"
read -r CONV MSG SUB MEDIA_KEY MEDIA_EXP MEDIA_SIG <<<"$IDS"

cat >"$WORK/schemathesis.toml" <<EOF
# No .schemathesis/ cache in the working tree, and no replay of earlier runs' failures:
# every run is the same run.
[cache]
enabled = false

[parameters]
"path.username" = "st-bob"

[[operations]]
include-path-regex = "^/chat/conversations/\\\\{id\\\\}"
parameters = { "path.id" = "$CONV" }

[[operations]]
include-path-regex = "^/chat/messages/\\\\{id\\\\}"
parameters = { "path.id" = "$MSG" }

[[operations]]
include-path-regex = "^/chat/push/subscriptions/\\\\{id\\\\}"
parameters = { "path.id" = "$SUB" }

[[operations]]
include-path = "/media/{key}"
parameters = { "path.key" = "$MEDIA_KEY", "query.exp" = $MEDIA_EXP, "query.sig" = "$MEDIA_SIG" }
EOF

# --- the run ------------------------------------------------------------------------------
started=$(date +%s)
status=0
"$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$BASE/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,ignored_auth,unsupported_method \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --generation-database none \
    --workers 1 \
    --request-timeout 30 \
    --no-color \
    "$@" || status=$?
echo "schemathesis finished in $(($(date +%s) - started)) s (exit $status)"
if [ "$status" -ne 0 ]; then
    echo "--- chatd stderr (last 50 lines) ---" >&2
    tail -n 50 "$WORK/chatd.err" >&2
fi
exit "$status"
