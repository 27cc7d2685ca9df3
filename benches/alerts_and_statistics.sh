#!/usr/bin/env bash
# Benchmarks of issue 21 (statistics and live alerts), on SQLite:
#
#   benches/alerts_and_statistics.sh [statistics|events|both]     (default: both)
#
# statistics: 1,000,000 observations over the year 2026 at both demo places and every
#   category, written straight into a fresh database (as a database from before the
#   statistics: the start-up counts them once, and that time is printed); then wrk asks
#   for the year by place, category and month (the largest table of one year) for
#   BENCH_DURATION (default 10s) on 8 connections. Target: p50 < 50 ms. Every answer
#   includes its audit entry, durable.
# events: 1,000 open event streams (police, who hear of every observation) on one
#   instance; a guard files BENCH_EVENTS observations (default 20), one every 300 ms; the
#   time from each filing's 201 to its event on every stream is measured. Targets: p99
#   < 1 s, the server's peak resident memory < 250 MB.
# Needs wrk (from Debian's packages if missing), sqlite3, python3, jq.
set -euo pipefail
cd "$(dirname "$0")/.."

WHAT=${1:-both}
DURATION=${BENCH_DURATION:-10s}
EVENTS=${BENCH_EVENTS:-20}
STREAMS=${BENCH_STREAMS:-1000}
PORT=${BENCH_PORT:-18090}
BASE="http://127.0.0.1:$PORT"
PASSWORD=bench-password-1234
WORK=$(mktemp -d /tmp/samverkan-bench21.XXXXXX)
BIN=${CARGO_TARGET_DIR:-target}/release/samverkan

command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
cargo build --release -q
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT

start_server() { # db
  DATABASE_URL="$1" SAMVERKAN_BIND="127.0.0.1:$PORT" SAMVERKAN_DEMO_PASSWORD=$PASSWORD \
    SAMVERKAN_LOG_FORMAT=text RUST_LOG=warn "$BIN" serve --demo >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    curl -sf "$BASE/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the server did not start"; cat "$WORK/server.log"; exit 1
}

token() { # user
  curl -sf "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"$PASSWORD\"}" | jq -er .access_token
}

statistics() {
  local db="$WORK/stats.db"
  start_server "$db"; stop_server
  # As a database from before the statistics: the rows, no counts, the marker.
  sqlite3 "$db" <<'SQL'
PRAGMA journal_mode = WAL;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999999)
INSERT INTO observations (id, place_id, observed_at, category, description, reporter_id, reporter_org_id, created_at, legal_hold)
SELECT printf('%08x-0000-4000-8000-%012x', i, i),
       CASE i % 2 WHEN 0 THEN 'sergels-torg' ELSE 'hasselby-torg' END,
       1767225600000000 + (i * 31449) * 1000,
       CASE i % 8 WHEN 0 THEN 'drug_sale' WHEN 1 THEN 'drug_use' WHEN 2 THEN 'violence' WHEN 3 THEN 'threat'
                  WHEN 4 THEN 'disorder' WHEN 5 THEN 'weapon_found' WHEN 6 THEN 'intoxication' ELSE 'other' END,
       NULL, (SELECT id FROM users WHERE username = 'vakt1'), (SELECT organization_id FROM users WHERE username = 'vakt1'),
       1767225600000000 + (i * 31449) * 1000, 0
FROM n;
DELETE FROM observation_counts;
INSERT INTO observation_counts (month, place_id, category, count) VALUES ('backfill', '', '', 0);
SQL
  local t0 t1
  t0=$(date +%s.%N); start_server "$db"; t1=$(date +%s.%N)
  printf 'start-up with 1,000,000 observations to count: %.1f s\n' "$(echo "$t1 - $t0" | bc)"
  local tok; tok=$(token samordnare1)
  local q="from=2026-01&to=2026-12&group_by=place,category,month"
  local total
  total=$(curl -sf "$BASE/api/v1/statistics/observations?from=2026-01&to=2026-12&group_by=year" -H "authorization: Bearer $tok" | jq '.rows[0].count')
  echo "counted: $total observations in 2026 (demo samples included)"
  cat >"$WORK/stats.lua" <<LUA
wrk.headers["authorization"] = "Bearer $tok"
LUA
  wrk -t2 -c8 -d"$DURATION" --latency -s "$WORK/stats.lua" "$BASE/api/v1/statistics/observations?$q" | tee "$WORK/wrk.txt"
  echo "statistics: $(grep -E '^ +50%' "$WORK/wrk.txt" | awk '{print "p50 " $2}') $(grep -E '^ +99%' "$WORK/wrk.txt" | awk '{print "p99 " $2}') $(grep Requests/sec "$WORK/wrk.txt")"
  # After each write the year's counts differ, so its suppression is decided again.
  local guard; guard=$(token vakt1)
  local times=()
  for i in $(seq 1 20); do
    curl -sf "$BASE/api/v1/observations" -H "authorization: Bearer $guard" -H 'content-type: application/json' \
      -d '{"place":"sergels-torg","observed_at":"2026-11-30T21:00:00Z","category":"threat"}' >/dev/null
    times+=("$(curl -sf -o /dev/null -w '%{time_total}' "$BASE/api/v1/statistics/observations?$q" -H "authorization: Bearer $tok")")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "statistics right after a write (decided again): p50 %.1f ms, max %.1f ms\n", a[int((NR+1)/2)]*1000, a[NR]*1000}'
  stop_server
}

events() {
  local db="$WORK/events.db"
  start_server "$db"
  local police guard
  police=$(token polis1); guard=$(token vakt1)
  python3 - "$PORT" "$police" "$guard" "$STREAMS" "$EVENTS" "$SERVER_PID" <<'PY'
import asyncio, json, sys, time, urllib.request

port, police, guard, streams, events, pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
arrivals = {}   # record id -> list of arrival times
opened = 0

async def stream(i, ready):
    global opened
    r, w = await asyncio.open_connection("127.0.0.1", int(port))
    w.write((f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {police}\r\n"
             "Accept: text/event-stream\r\n\r\n").encode())
    await w.drain()
    first = True
    while True:
        line = await r.readline()
        if not line:
            return
        if first and line.startswith(b": open"):
            first = False
            opened += 1
            if opened == streams:
                ready.set()
        if line.startswith(b"data: "):
            rid = json.loads(line[6:])["id"]
            arrivals.setdefault(rid, []).append(time.monotonic())

def post():
    body = json.dumps({"place": "sergels-torg", "observed_at": "2026-11-30T21:00:00Z", "category": "disorder"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/observations", data=body,
        headers={"authorization": f"Bearer {guard}", "content-type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())["id"]

def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) // 1024
    return -1

async def main():
    ready = asyncio.Event()
    t0 = time.monotonic()
    tasks = [asyncio.create_task(stream(i, ready)) for i in range(streams)]
    await asyncio.wait_for(ready.wait(), 120)
    print(f"{streams} streams open in {time.monotonic() - t0:.1f} s")
    filed = {}
    loop = asyncio.get_running_loop()
    for _ in range(events):
        rid = await loop.run_in_executor(None, post)
        filed[rid] = time.monotonic()
        await asyncio.sleep(0.3)
    await asyncio.sleep(2)
    delays = sorted(t - filed[rid] for rid in filed for t in arrivals.get(rid, []))
    got = sum(len(arrivals.get(rid, [])) for rid in filed)
    expected = streams * events
    p = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))] * 1000 if delays else float("nan")
    print(f"events: {got} of {expected} delivered; delay p50 {p(0.5):.0f} ms, p99 {p(0.99):.0f} ms, max {p(1.0):.0f} ms; "
          f"server peak RSS {rss()} MB")
    for t in tasks:
        t.cancel()

asyncio.run(main())
PY
  stop_server
}

case "$WHAT" in
  statistics) statistics ;;
  events) events ;;
  both) statistics; events ;;
  *) echo "usage: $0 [statistics|events|both]"; exit 2 ;;
esac
