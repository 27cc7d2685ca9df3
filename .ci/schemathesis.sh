#!/usr/bin/env bash
# Schema-based fuzzing of the running service: starts a demo server on a fresh SQLite
# database (or PostgreSQL: SAMVERKAN_SCHEMATHESIS_DATABASE_URL), signs in a few roles and
# runs schemathesis with every check against /openapi.json as each of them. Exits
# non-zero when schemathesis finds anything (5xx, a response not matching the schema...).
#
# Knobs: SCHEMATHESIS_ROLES (default "polis1 soc1 vakt1 revisor1 admin1"),
# SCHEMATHESIS_MAX_EXAMPLES (default 30), SCHEMATHESIS_SEED (default fixed, so a CI run is
# reproducible; set another to explore), SCHEMATHESIS_EXTRA (more flags).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v schemathesis >/dev/null 2>&1; then
  echo "== installing schemathesis"
  python3 -m pip install --quiet schemathesis
fi

workdir="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$workdir"
}
trap cleanup EXIT

echo "== building"
cargo build -q
bin="${CARGO_TARGET_DIR:-target}/debug/samverkan"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
password="schemathesis-demo-password"
export DATABASE_URL="${SAMVERKAN_SCHEMATHESIS_DATABASE_URL:-$workdir/samverkan.db}"
export SAMVERKAN_DEMO_PASSWORD="$password"
export RUST_LOG="${RUST_LOG:-warn}"

echo "== starting the demo server on $base"
"$bin" serve --demo --bind "127.0.0.1:$port" >"$workdir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$workdir/server.log"; exit 1; }
  sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null

token() {
  curl -fsS -X POST "$base/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"$password\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

status=0
# admin1 goes last: its run may disable or re-password the other demo users.
for role in ${SCHEMATHESIS_ROLES:-polis1 soc1 vakt1 revisor1 admin1}; do
  echo "== schemathesis as $role"
  t="$(token "$role")"
  # Logout and password change would end the very session the run uses. The event
  # stream never ends (by design), so a fuzzer waiting for its body would wait for
  # ever; tests/api/events.rs and the browser flow cover it.
  # positive_data_acceptance is left out: a schema cannot say that a place or an
  # organisation must exist, or what a role may write, so schema-valid bodies are
  # rightly refused (400/403); every other check runs.
  out="$workdir/schemathesis-$role.log"
  # shellcheck disable=SC2086
  schemathesis --no-color run "$base/openapi.json" \
    -H "Authorization: Bearer $t" \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --exclude-path /api/v1/auth/logout \
    --exclude-path /api/v1/me/password \
    --exclude-path /api/v1/events \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-30}" \
    --seed "${SCHEMATHESIS_SEED:-20261125}" \
    --workers 2 \
    --suppress-health-check all \
    ${SCHEMATHESIS_EXTRA:-} 2>&1 | tee "$out" || true
  # A finding fails the run. A crash inside schemathesis itself ("Runtime Error", seen
  # with CPython 3.11's "AST constructor recursion depth mismatch") is its bug, not the
  # service's: it is reported but does not fail the run.
  if grep -q '^Failures:' "$out"; then
    status=1
  elif grep -q 'Runtime Error' "$out"; then
    echo "== note: schemathesis had an internal error as $role (not a finding)"
  elif ! grep -qE '[0-9]+ passed' "$out"; then
    status=1
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the server died"; cat "$workdir/server.log"; exit 1
  fi
done

echo "== the service is still healthy"
curl -fsS "$base/readyz" >/dev/null || status=1
# A 500 logs "internal error" with its cause; malformed requests that actix refuses
# itself log at error level too, and are not ours.
if grep -q 'internal error' "$workdir/server.log"; then
  echo "the server had internal errors:"; grep 'internal error' "$workdir/server.log" | head -20
  status=1
fi
exit "$status"
