#!/usr/bin/env bash
# Starts a real chatnode (release build) on a free loopback port with a fresh data dir and
# runs the web client's end-to-end suite against it in headless Chromium.
# `scripts/e2e.sh restart DIR` is what the suite calls to restart that server mid-test.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/chatnode"

start_server() { # dir port
    "$bin" serve --listen "127.0.0.1:$2" --data-dir "$1/data" >>"$1/server.log" 2>&1 &
    echo $! >"$1/pid"
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$2/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "chatnode did not start; log:" >&2
    cat "$1/server.log" >&2
    return 1
}

if [ "${1:-}" = restart ]; then
    dir="$2"
    port=$(cat "$dir/port")
    kill -TERM "$(cat "$dir/pid")" 2>/dev/null || true
    while kill -0 "$(cat "$dir/pid")" 2>/dev/null; do sleep 0.05; done
    sleep "${3:-1}"
    start_server "$dir" "$port"
    exit 0
fi

dir=$(mktemp -d /tmp/chatnode-e2e.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "$port" >"$dir/port"
start_server "$dir" "$port"
trap 'kill -TERM "$(cat "$dir/pid")" 2>/dev/null || true' EXIT
export CHATNODE_URL="http://127.0.0.1:$port"
export CHATNODE_E2E_DIRECT=1
export CHATNODE_RESTART_CMD="bash $PWD/scripts/e2e.sh restart $dir"
(cd web && npm run e2e)
