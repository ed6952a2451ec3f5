#!/usr/bin/env bash
# Starts a real chatnode (release build) on a free loopback port with a fresh data dir, and the
# test OpenID provider (crates/server/tests/oidc) as its single sign-on provider "Test IdP", and
# runs the web client's end-to-end suite against them in headless Chromium.
# `scripts/e2e.sh restart DIR [SECONDS]` is what the suite calls to restart that server mid-test
# (same port, data dir and single sign-on flags).
#
# CHATNODE_BIN: the server binary (default: the cargo target dir's release/chatnode).
# The suite gets CHATNODE_BIN and CHATNODE_DATA_DIR (to run `chatnode admin grant` and
# `chatnode service-token create` on the server's data) and CHATNODE_E2E_IDP (the provider's URL).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CHATNODE_BIN:-$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/chatnode}"
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
oidc_dir="$PWD/crates/server/tests/oidc"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_server() { # dir port
    local sso=()
    if [ -s "$1/idp_url" ]; then
        sso=(--oidc-issuer "$(cat "$1/idp_url")" --oidc-client-id chatnode-e2e --oidc-name "Test IdP")
    fi
    CHATNODE_OIDC_CLIENT_SECRET="$(cat "$1/idp_secret" 2>/dev/null || true)" \
        "$bin" serve --listen "127.0.0.1:$2" --data-dir "$1/data" ${sso[@]+"${sso[@]}"} >>"$1/server.log" 2>&1 &
    echo $! >"$1/pid"
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$2/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "chatnode did not start; log:" >&2
    cat "$1/server.log" >&2
    return 1
}

# The test OpenID provider on a free port (it picks one and prints it), registered for this
# server's callback. Without Node modules it cannot run: the single sign-on test then skips.
start_idp() { # dir server_port
    if [ ! -d "$oidc_dir/node_modules" ]; then
        (cd "$oidc_dir" && npm ci --no-audit --no-fund --loglevel=error) >&2 || {
            echo "e2e: could not install the test OpenID provider; single sign-on is left out" >&2
            return 0
        }
    fi
    head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$1/idp_secret"
    node "$oidc_dir/provider.mjs" --port 0 --client-id chatnode-e2e --client-secret "$(cat "$1/idp_secret")" \
        --redirect-uri "http://127.0.0.1:$2/api/v1/auth/oidc/test-idp/callback" >"$1/idp.out" 2>>"$1/idp.log" &
    echo $! >"$1/idp_pid"
    for _ in $(seq 1 100); do
        if grep -q '^listening ' "$1/idp.out" 2>/dev/null; then
            sed -n 's/^listening //p' "$1/idp.out" | head -n 1 >"$1/idp_url"
            return 0
        fi
        kill -0 "$(cat "$1/idp_pid")" 2>/dev/null || break
        sleep 0.1
    done
    echo "e2e: the test OpenID provider did not start; single sign-on is left out. Log:" >&2
    cat "$1/idp.log" >&2 || true
    kill -TERM "$(cat "$1/idp_pid")" 2>/dev/null || true
    rm -f "$1/idp_url"
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
port=$(free_port)
echo "$port" >"$dir/port"
cleanup() {
    kill -TERM "$(cat "$dir/pid" 2>/dev/null)" 2>/dev/null || true
    kill -TERM "$(cat "$dir/idp_pid" 2>/dev/null)" 2>/dev/null || true
}
trap cleanup EXIT
start_idp "$dir" "$port"
start_server "$dir" "$port"
export CHATNODE_URL="http://127.0.0.1:$port"
export CHATNODE_E2E_DIRECT=1
export CHATNODE_RESTART_CMD="bash $PWD/scripts/e2e.sh restart $dir"
export CHATNODE_BIN="$bin"
export CHATNODE_DATA_DIR="$dir/data"
if [ -s "$dir/idp_url" ]; then export CHATNODE_E2E_IDP="$(cat "$dir/idp_url")"; fi
(cd web && npm run e2e)
