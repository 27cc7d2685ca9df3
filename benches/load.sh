#!/usr/bin/env bash
# Load benchmark for samverkan (issue: benchmarks and a fast read path).
#
#   benches/load.sh [sqlite|postgres|both|multi]      (default: both; multi: only scenario 8)
#
# Builds the release binary, starts it on a fresh database per backend with the shipped
# default configuration (plus --demo), and measures with wrk on this machine:
#   1. /healthz                                  the baseline, 32 connections
#   2. a guard's GET of one lägesbild            token check, a policy decision per section,
#                                                audit entry durable before the answer
#      (1 and 2 alternate until BENCH_ROUNDS rounds, default 5, ran undisturbed: with the
#      hypervisor's steal at most BENCH_MAX_STEAL %, default 5, during the read; at most
#      BENCH_MAX_ROUNDS, default 3 × BENCH_ROUNDS. The table shows the undisturbed round
#      with the median GET ÷ healthz ratio; every round is listed under it, with its steal)
#   3. guards filing observations (POST)         write + audit, durable
#   4. police listing the newest 50 observations at a place, at 10k and at 1M observations
#      (with 10M audit entries for the 1M run)
#   5. a flood of wrong-password logins, while a guard reads and a user signs in
#   6. a guard's list of the newest 50 observations with 0 and with 100,000 rows the guard
#      cannot see (newer than every visible one): the answer is the same, and its time
#      must not grow with the hidden rows (the list reads only what the policy's scope
#      admits; see records::visibility)
#   7. a guard's /situation-reports page beside the API list of the same reports
#   8. (multi) the guard's GET and POSTs on one PostgreSQL instance, then spread over three
#      instances on the same database (target: three together ≥ one alone), at 32
#      connections and at BENCH_WIDE_CONNS (default 128; /healthz again at that width)
# and the server's peak resident memory over the run. Each row also gives the CPU the
# hypervisor took away during it ("steal" in /proc/stat; on this VM it follows disk I/O
# and swings from 0 to 45 % between runs); a run with more than BENCH_MAX_STEAL % is run
# again, up to BENCH_TRIES times (default 5), the least disturbed run is shown and every
# try is listed. Needs wrk (installed from Debian's packages if missing), sqlite3 and
# psql (PostgreSQL at 127.0.0.1:5432, trust auth).
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS=${1:-both}
DURATION=${BENCH_DURATION:-10s}
ROUNDS=${BENCH_ROUNDS:-5}
MAX_ROUNDS=${BENCH_MAX_ROUNDS:-$((ROUNDS * 3))}
MAX_STEAL=${BENCH_MAX_STEAL:-5}
MAX_TRIES=${BENCH_TRIES:-5}
WIDE=${BENCH_WIDE_CONNS:-128}
PORT=${BENCH_PORT:-18080}
BASE="http://127.0.0.1:$PORT"
PG_ADMIN=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
PASSWORD=bench-password-1234
KEYS="bench:$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=' | head -c 64)"
WORK=$(mktemp -d /tmp/samverkan-bench.XXXXXX)
RESULTS=benches/results.md
BIN=${CARGO_TARGET_DIR:-target}/release/samverkan

command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
cargo build --release -q

SERVER_PID=""
RSS_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; fi
}
cleanup() { stop_server; if [ -n "$RSS_PID" ]; then kill "$RSS_PID" 2>/dev/null || true; fi; rm -rf "$WORK"; }
trap cleanup EXIT

start_server() { # $1 = DATABASE_URL, rest = extra env
  local url=$1; shift
  env DATABASE_URL="$url" SAMVERKAN_DEMO_PASSWORD=$PASSWORD SAMVERKAN_JWT_KEYS="$KEYS" \
      SAMVERKAN_ACCESS_TOKEN_TTL_SECS=7200 SAMVERKAN_LOG_FORMAT=text RUST_LOG=warn "$@" \
      "$BIN" serve --demo --bind "127.0.0.1:$PORT" >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  if ! curl -fs "$BASE/readyz" >/dev/null; then
    echo "the server did not become ready on $BASE; its log:" >&2; tail -20 "$WORK/server.log" >&2; exit 1
  fi
  # Peak RSS of the server, sampled every 200 ms.
  ( while kill -0 "$SERVER_PID" 2>/dev/null; do ps -o rss= -p "$SERVER_PID" >>"$WORK/rss" 2>/dev/null || true; sleep 0.2; done ) &
  RSS_PID=$!
}

login() { curl -fs "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"$1\",\"password\":\"$PASSWORD\"}" | sed -E 's/.*"access_token":"([^"]+)".*/\1/'; }

# Percent of the CPU time between two /proc/stat "cpu" lines that the hypervisor took.
steal_percent() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    n = split(a, x); split(b, y); t = 0
    for (i = 2; i <= 9 && i <= n; i++) t += y[i] - x[i]
    printf "%.1f", (t > 0 ? 100 * (y[9] - x[9]) / t : 0) }'
}

# wrk output → "rps p50 p99 errors"
summarise() {
  awk '
    /Requests\/sec/ {rps=$2}
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
    /Non-2xx or 3xx responses/ {err+=$NF}
    /Socket errors/ {for (i=1;i<=NF;i++) if ($i ~ /^[0-9]+,?$/) {gsub(",","",$i); err+=$i}}
    END {printf "%s %s %s %d\n", rps, p50, p99, err+0}'
}

# Runs one scenario; a run in which the hypervisor took more than MAX_STEAL % of the CPU
# is run again (TRIES times in all, default BENCH_TRIES or 5) and the least disturbed run
# is the row; every try is listed under the table.
# The row's last column is that run's steal; LAST_STEAL keeps it for the caller.
run_wrk() { # name, connections, extra wrk args…
  local name=$1 conns=$2; shift 2
  local try best="" best_steal="" cpu0 out steal
  for try in $(seq 1 "${TRIES:-$MAX_TRIES}"); do
    cpu0=$(head -1 /proc/stat)
    out=$(wrk -t2 -c"$conns" -d"$DURATION" --latency "$@")
    steal=$(steal_percent "$cpu0" "$(head -1 /proc/stat)")
    if [ -z "${TRIES:-}" ]; then
      read -r rps p50 p99 err <<<"$(echo "$out" | summarise)"
      echo "$BACKEND $name, try $try: $rps req/s, p50 $p50, p99 $p99, $err errors, steal $steal %" >>"$WORK/tries"
    fi
    if [ -z "$best_steal" ] || awk -v a="$steal" -v b="$best_steal" 'BEGIN {exit !(a < b)}'; then
      best=$out; best_steal=$steal
    fi
    awk -v s="$best_steal" -v m="$MAX_STEAL" 'BEGIN {exit !(s <= m)}' && break
  done
  LAST_STEAL=$best_steal
  echo "$best" >"$WORK/wrk-$name.txt"
  read -r rps p50 p99 err <<<"$(echo "$best" | summarise)"
  printf '| %s | %s | %s | %s | %s | %s | %s %% |\n' "$BACKEND" "$name" "$conns" "$rps" "$p50 / $p99" "$err" "$best_steal" | tee -a "$WORK/table"
}

seed_observations() { # url, target count
  local url=$1 n=$2
  if [ "$BACKEND" = sqlite ]; then
    local rid org; rid=$(sqlite3 "$url" "SELECT id FROM users WHERE username='vakt1'"); org=$(sqlite3 "$url" "SELECT organization_id FROM users WHERE username='vakt1'")
    sqlite3 "$url" "PRAGMA synchronous=OFF; WITH RECURSIVE c(x) AS (SELECT (SELECT COUNT(*) FROM observations)+1 UNION ALL SELECT x+1 FROM c WHERE x < $n)
      INSERT INTO observations (id, place_id, observed_at, category, description, reporter_id, reporter_org_id, created_at, legal_hold)
      SELECT printf('00000000-0000-7000-8000-%012d', x), CASE x % 2 WHEN 0 THEN 'sergels-torg' ELSE 'hasselby-torg' END,
             1700000000000000 + x * 1000000, 'drug_use', 'bench', '$rid', '$org', 1700000000000000 + x * 1000000, FALSE FROM c;"
  else
    psql -q "$url" -c "INSERT INTO observations (id, place_id, observed_at, category, description, reporter_id, reporter_org_id, created_at, legal_hold)
      SELECT lpad(x::text, 12, '0'), CASE x % 2 WHEN 0 THEN 'sergels-torg' ELSE 'hasselby-torg' END,
             1700000000000000 + x * 1000000, 'drug_use', 'bench', u.id, u.organization_id, 1700000000000000 + x * 1000000, FALSE
      FROM generate_series((SELECT COUNT(*) FROM observations) + 1, $n) AS x, users u WHERE u.username = 'vakt1';
      UPDATE observations SET id = '00000000-0000-7000-8000-' || id WHERE length(id) = 12; ANALYZE observations;"
  fi
}

seed_place() { # url, place, count, first time (µs since the epoch), id group (4 hex digits)
  local url=$1 place=$2 n=$3 t0=$4 group=$5
  if [ "$BACKEND" = sqlite ]; then
    local rid org; rid=$(sqlite3 "$url" "SELECT id FROM users WHERE username='vakt1'"); org=$(sqlite3 "$url" "SELECT organization_id FROM users WHERE username='vakt1'")
    sqlite3 "$url" "PRAGMA synchronous=OFF; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < $n)
      INSERT INTO observations (id, place_id, observed_at, category, description, reporter_id, reporter_org_id, created_at, legal_hold)
      SELECT printf('00000000-0000-7000-$group-%012d', x), '$place', $t0 + x * 1000000, 'drug_use', 'bench', '$rid', '$org', $t0 + x * 1000000, FALSE FROM c;"
  else
    psql -q "$url" -c "INSERT INTO observations (id, place_id, observed_at, category, description, reporter_id, reporter_org_id, created_at, legal_hold)
      SELECT '00000000-0000-7000-$group-' || lpad(x::text, 12, '0'), '$place', $t0 + x * 1000000, 'drug_use', 'bench', u.id, u.organization_id, $t0 + x * 1000000, FALSE
      FROM generate_series(1::bigint, $n) AS x, users u WHERE u.username = 'vakt1'; ANALYZE observations;"
  fi
}

# A guard at Hässelby torg (vakt2) lists the newest 50 observations: 1,000 at Hässelby torg
# it sees (their core), then 100,000 more at Sergels torg, newer than all of them, that it
# cannot see. The answer stays the same; the time should too.
bench_hidden() { # url of an empty database
  local url=$1 vakt2 first second
  start_server "$url"; stop_server
  seed_place "$url" hasselby-torg 1000 1700000000000000 8001
  settle "$url"
  start_server "$url"
  vakt2=$(login vakt2)
  first=$(curl -fs "$BASE/api/v1/observations?limit=50" -H "authorization: Bearer $vakt2" | sha256sum)
  run_wrk "guard list 50, 0 hidden rows" 4 -H "Authorization: Bearer $vakt2" "$BASE/api/v1/observations?limit=50"
  stop_server
  seed_place "$url" sergels-torg 100000 1800000000000000 8002
  settle "$url"
  start_server "$url"
  vakt2=$(login vakt2)
  second=$(curl -fs "$BASE/api/v1/observations?limit=50" -H "authorization: Bearer $vakt2" | sha256sum)
  run_wrk "guard list 50, 100k hidden rows" 4 -H "Authorization: Bearer $vakt2" "$BASE/api/v1/observations?limit=50"
  stop_server
  if [ "$first" != "$second" ]; then echo "the guard's list changed with hidden rows" >&2; exit 1; fi
}

seed_audit() { # url, count — filler entries (this throwaway database's chain is not verified)
  local url=$1 n=$2
  if [ "$BACKEND" = sqlite ]; then
    sqlite3 "$url" "PRAGMA synchronous=OFF; WITH RECURSIVE c(x) AS (SELECT (SELECT seq FROM audit_head)+1 UNION ALL SELECT x+1 FROM c WHERE x < (SELECT seq FROM audit_head) + $n)
      INSERT INTO audit_log (seq, at, actor_username, action, record_kind, record_id, parts, outcome, prev_hash, hash)
      SELECT x, 1700000000000000 + x, 'polis1', 'read', 'observation', printf('00000000-0000-7000-8000-%012d', x % 1000000), 'core', 'success', 'x', 'x' FROM c;
      INSERT INTO audit_keys (seq, at, actor_username, record_id)
        SELECT seq, at, actor_username, record_id FROM audit_log WHERE seq > (SELECT indexed_seq FROM audit_head);
      UPDATE audit_head SET seq = (SELECT MAX(seq) FROM audit_log), indexed_seq = (SELECT MAX(seq) FROM audit_log);"
  else
    psql -q "$url" -c "INSERT INTO audit_log (seq, at, actor_username, action, record_kind, record_id, parts, outcome, prev_hash, hash)
      SELECT x, 1700000000000000 + x, 'polis1', 'read', 'observation', '00000000-0000-7000-8000-' || lpad((x % 1000000)::text, 12, '0'), 'core', 'success', 'x', 'x'
      FROM generate_series((SELECT MAX(seq) FROM audit_head) + 1, (SELECT MAX(seq) FROM audit_head) + $n) AS x;
      INSERT INTO audit_keys (seq, at, actor_username, record_id)
        SELECT seq, at, actor_username, record_id FROM audit_log WHERE seq > (SELECT MAX(indexed_seq) FROM audit_head);
      UPDATE audit_head SET seq = (SELECT MAX(seq) FROM audit_log), indexed_seq = (SELECT MAX(seq) FROM audit_log) WHERE id = 1;
      SELECT setval('audit_seq', (SELECT MAX(seq) FROM audit_log));
      ANALYZE audit_log; ANALYZE audit_keys;"
  fi
}

# Seeding writes gigabytes without syncing; flush them before the server starts, so that
# no group commit's sync waits behind the kernel writing them back.
settle() { # url
  if [ "$BACKEND" = postgres ]; then psql -q "$1" -c "CHECKPOINT"; fi
  sync
}

bench_backend() {
  BACKEND=$1
  local url
  if [ "$BACKEND" = sqlite ]; then
    url="$WORK/bench.db"
  else
    pg_isready -h 127.0.0.1 -p 5432 -q || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS samverkan_bench WITH (FORCE)" -c "CREATE DATABASE samverkan_bench"
    url="${PG_ADMIN%/*}/samverkan_bench"
  fi
  : >"$WORK/rss"
  start_server "$url"
  local vakt polis report
  vakt=$(login vakt1); polis=$(login polis1)
  report=$(curl -fs "$BASE/api/v1/situation-reports" -H "authorization: Bearer $polis" -H 'content-type: application/json' -d '{
    "place":"sergels-torg","title":"Kväll","sections":[{"audience":"general","body":"Razzia nyss, oro möjlig."},
    {"audience":"on_site","body":"Extra patrull vid fontänen."},{"audience":"police_only","body":"Underrättelse."}]}' \
    | sed -E 's/.*"id":"([^"]+)".*/\1/')

  # The ratio drifts with whatever else the machine does, so the baseline and the read
  # alternate, and the table shows the round with the median ratio (every round is listed
  # under the table). On a VM the host also takes CPU away ("steal" in /proc/stat), most
  # while the guest does disk I/O; in a round where it took more than MAX_STEAL % during
  # the read, that round is listed but another is run, until ROUNDS undisturbed rounds or
  # MAX_ROUNDS in all.
  local round=0 quiet=0 ratios=()
  while [ "$quiet" -lt "$ROUNDS" ] && [ "$round" -lt "$MAX_ROUNDS" ]; do
    round=$((round + 1))
    TRIES=1 run_wrk "healthz (baseline)" 32 "$BASE/healthz" >/dev/null
    cp "$WORK/wrk-healthz (baseline).txt" "$WORK/round-$round-healthz.txt"
    TRIES=1 run_wrk "guard GET lägesbild" 32 -H "Authorization: Bearer $vakt" "$BASE/api/v1/situation-reports/$report" >/dev/null
    local steal=$LAST_STEAL
    cp "$WORK/wrk-guard GET lägesbild.txt" "$WORK/round-$round-get.txt"
    local h g p99 ok; h=$(summarise <"$WORK/round-$round-healthz.txt" | cut -d' ' -f1); g=$(summarise <"$WORK/round-$round-get.txt" | cut -d' ' -f1)
    p99=$(summarise <"$WORK/round-$round-get.txt" | cut -d' ' -f3)
    ok=$(awk -v s="$steal" -v m="$MAX_STEAL" 'BEGIN {print (s <= m) ? 1 : 0}')
    quiet=$((quiet + ok))
    ratios+=("$(awk -v g="$g" -v h="$h" 'BEGIN {printf "%.3f", g / h}') $round $h $g $p99 $steal $ok")
    # run_wrk appended both rows to the table: keep only the chosen round's, below.
    head -n -2 "$WORK/table" >"$WORK/table.tmp" && mv "$WORK/table.tmp" "$WORK/table"
  done
  # The median of the undisturbed rounds; of all rounds if none was undisturbed.
  local pool=1 label="median of $quiet rounds with steal ≤ $MAX_STEAL %"
  if [ "$quiet" -eq 0 ]; then pool=0; label="median of all $round rounds: every one had steal > $MAX_STEAL %"; fi
  local chosen; chosen=$(printf '%s\n' "${ratios[@]}" | awk -v p="$pool" 'p == 0 || $7 == 1' | sort -n)
  local n; n=$(echo "$chosen" | wc -l)
  local median; median=$(echo "$chosen" | awk -v n="$n" 'NR == int((n + 1) / 2) {print $2}')
  for f in healthz get; do
    local name conns=32; [ $f = healthz ] && name="healthz (baseline)" || name="guard GET lägesbild"
    read -r rps p50 p99 err <<<"$(summarise <"$WORK/round-$median-$f.txt")"
    local st="–"; [ $f = get ] && st="$(echo "$chosen" | awk -v m="$median" '$2 == m {print $6}') %"
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$BACKEND" "$name" "$conns" "$rps" "$p50 / $p99" "$err" "$st" | tee -a "$WORK/table"
  done
  printf '| %s | GET ÷ healthz (%s) | 32 | %s | – | – | – |\n' "$BACKEND" "$label" \
    "$(echo "$chosen" | awk -v n="$n" 'NR == int((n + 1) / 2) {print $1}')" | tee -a "$WORK/table"
  printf '%s\n' "${ratios[@]}" | sort -k2 -n | awk -v b="$BACKEND" -v m="$median" '{printf "%s round %s: healthz %s req/s, GET %s req/s (p99 %s), ratio %s, steal %s %%%s%s\n", b, $2, $3, $4, $5, $1, $6, ($7 == 1) ? "" : " (disturbed: another round was run)", ($2 == m) ? " ← the table" : ""}' >>"$WORK/rounds"
  # The page a guard opens most, /situation-reports, against the API list it is made
  # from (the same reports, the same decisions and audit entries): target ≥ 80 % of the
  # API's throughput, p99 < 20 ms at 32 connections.
  local cookie
  cookie=$(curl -s -o /dev/null -D - -d "username=vakt1&password=$PASSWORD" "$BASE/login" \
    | awk -F'[: ;]+' 'tolower($1) == "set-cookie" {print $2; exit}')
  run_wrk "guard API list of lägesbilder" 32 -H "Authorization: Bearer $vakt" "$BASE/api/v1/situation-reports?current=true&limit=20"
  run_wrk "guard page /situation-reports" 32 -H "Cookie: $cookie" "$BASE/situation-reports"
  TOKEN=$vakt run_wrk "guard POST observation" 32 -s benches/post_observation.lua "$BASE/api/v1/observations"

  stop_server
  seed_observations "$url" 10000
  settle "$url"
  start_server "$url"
  run_wrk "police list 50 @10k obs" 4 -H "Authorization: Bearer $polis" "$BASE/api/v1/observations?place=sergels-torg&limit=50"
  stop_server
  echo "seeding 1M observations and 10M audit entries ($BACKEND)…" >&2
  seed_observations "$url" 1000000
  seed_audit "$url" 10000000
  settle "$url"
  start_server "$url"
  run_wrk "police list 50 @1M obs, 10M audit" 4 -H "Authorization: Bearer $polis" "$BASE/api/v1/observations?place=sergels-torg&limit=50"
  stop_server

  # Login flood: bounded hashing keeps the service answering. The per-client limit is
  # lifted for this run so that every attempt is hashed (many attacking addresses).
  start_server "$url" SAMVERKAN_LOGIN_MAX_FAILURES_PER_CLIENT=100000000 SAMVERKAN_LOGIN_MAX_FAILURES=100000000
  wrk -t1 -c64 -d"$DURATION" --latency -s benches/login_flood.lua "$BASE/api/v1/auth/login" >"$WORK/wrk-flood.txt" &
  local flood=$!
  sleep 1
  TRIES=1 run_wrk "guard GET lägesbild during login flood" 8 -H "Authorization: Bearer $vakt" "$BASE/api/v1/situation-reports/$report"
  local t0 t1; t0=$(date +%s%N); login falt1 >/dev/null; t1=$(date +%s%N)
  wait "$flood"
  read -r frps fp50 fp99 ferr <<<"$(summarise <"$WORK/wrk-flood.txt")"
  printf '| %s | login flood (wrong passwords) | 64 | %s | %s / %s | %s (401/503 expected) | – |\n' "$BACKEND" "$frps" "$fp50" "$fp99" "$ferr" | tee -a "$WORK/table"
  printf '| %s | a real login during the flood | 1 | – | %s ms | 0 | – |\n' "$BACKEND" "$(( (t1 - t0) / 1000000 ))" | tee -a "$WORK/table"
  stop_server
  kill "$RSS_PID" 2>/dev/null || true
  printf '| %s | peak server RSS | – | – | %s MB | – | – |\n' "$BACKEND" "$(( $(sort -n "$WORK/rss" | tail -1) / 1024 ))" | tee -a "$WORK/table"

  if [ "$BACKEND" = sqlite ]; then
    url="$WORK/hidden.db"
  else
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS samverkan_bench_hidden WITH (FORCE)" -c "CREATE DATABASE samverkan_bench_hidden"
    url="${PG_ADMIN%/*}/samverkan_bench_hidden"
  fi
  bench_hidden "$url"
}

# Several instances on one PostgreSQL (issue 20): a guard's GET of one lägesbild, 32
# connections on one instance, then the same 32 spread over three instances of the binary
# on the same database (three wrk processes at once, 11 + 11 + 10 connections), and POSTs
# likewise. Target: three together ≥ one alone. Then the same GET (and /healthz, for the
# ratio) at BENCH_WIDE_CONNS connections (default 128): at 32 an audited read is bound by
# the latency of its commit (32 requests ÷ the time each waits for its group's flush),
# not by what the machine can do; the wide run measures what it can do.
bench_multi() { # url of an empty PostgreSQL database
  local url=$1 vakt polis report i
  BACKEND=postgres
  start_server "$url"
  vakt=$(login vakt1); polis=$(login polis1)
  report=$(curl -fs "$BASE/api/v1/situation-reports" -H "authorization: Bearer $polis" -H 'content-type: application/json' -d '{
    "place":"sergels-torg","title":"Kväll","sections":[{"audience":"general","body":"Razzia nyss."},
    {"audience":"on_site","body":"Extra patrull."},{"audience":"police_only","body":"Underrättelse."}]}' \
    | sed -E 's/.*"id":"([^"]+)".*/\1/')
  # The req/s of the row just added to the table.
  last_rps() { tail -1 "$WORK/table" | cut -d'|' -f5 | tr -d ' '; }
  local h32 g32 h_wide g_wide p1 t32 t_wide p3
  run_wrk "healthz (baseline), 1 instance" 32 "$BASE/healthz"; h32=$(last_rps)
  run_wrk "guard GET lägesbild, 1 instance" 32 -H "Authorization: Bearer $vakt" "$BASE/api/v1/situation-reports/$report"; g32=$(last_rps)
  run_wrk "healthz (baseline), 1 instance" "$WIDE" "$BASE/healthz"; h_wide=$(last_rps)
  run_wrk "guard GET lägesbild, 1 instance" "$WIDE" -H "Authorization: Bearer $vakt" "$BASE/api/v1/situation-reports/$report"; g_wide=$(last_rps)
  # Writes last: PostgreSQL's vacuum and checkpoint after them slow reads for ~10 s.
  TOKEN=$vakt run_wrk "guard POST observation, 1 instance" 32 -s benches/post_observation.lua "$BASE/api/v1/observations"; p1=$(last_rps)
  stop_server
  local pids=()
  for i in 1 2 3; do
    env DATABASE_URL="$url" SAMVERKAN_DEMO_PASSWORD=$PASSWORD SAMVERKAN_JWT_KEYS="$KEYS" \
      SAMVERKAN_ACCESS_TOKEN_TTL_SECS=7200 SAMVERKAN_LOG_FORMAT=text RUST_LOG=warn \
      "$BIN" serve --demo --bind "127.0.0.1:$((PORT + i))" >>"$WORK/server.log" 2>&1 &
    pids+=($!)
  done
  for i in 1 2 3; do
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$((PORT + i))/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  done
  spread() { # name, connections in all, URL path, wrk args…
    local name=$1 conns=$2 path=$3; shift 3
    local cpu0 steal c rps p99 err
    cpu0=$(head -1 /proc/stat)
    for i in 1 2 3; do
      c=$((conns / 3 + (i <= conns % 3 ? 1 : 0)))
      wrk -t1 -c"$c" -d"$DURATION" --latency "$@" "http://127.0.0.1:$((PORT + i))$path" >"$WORK/multi-$i.txt" &
    done
    wait $(jobs -p | tail -3)
    steal=$(steal_percent "$cpu0" "$(head -1 /proc/stat)")
    rps=$(for i in 1 2 3; do summarise <"$WORK/multi-$i.txt" | cut -d' ' -f1; done | awk '{s += $1} END {printf "%.2f", s}')
    p99=$(for i in 1 2 3; do summarise <"$WORK/multi-$i.txt" | cut -d' ' -f3; done | paste -sd' ')
    err=$(for i in 1 2 3; do summarise <"$WORK/multi-$i.txt" | cut -d' ' -f4; done | awk '{s += $1} END {print s}')
    printf '| postgres | %s | %s | %s | p99 %s | %s | %s %% |\n' "$name" "$conns" "$rps" "$p99" "$err" "$steal" | tee -a "$WORK/table"
  }
  spread "guard GET lägesbild, 3 instances" 32 "/api/v1/situation-reports/$report" -H "Authorization: Bearer $vakt"; t32=$(last_rps)
  spread "guard GET lägesbild, 3 instances" "$WIDE" "/api/v1/situation-reports/$report" -H "Authorization: Bearer $vakt"; t_wide=$(last_rps)
  TOKEN=$vakt spread "guard POST observation, 3 instances" 32 "/api/v1/observations" -s benches/post_observation.lua; p3=$(last_rps)
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  DATABASE_URL="$url" "$BIN" audit verify >"$WORK/verify.txt"
  head -1 "$WORK/verify.txt" | tee -a "$WORK/tries"
  # The issue's targets, worked out from the rows above.
  pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f %%", 100 * a / b}'; }
  verdict() { awk -v a="$1" -v b="$2" -v share="${3:-1}" 'BEGIN {print (a >= b * share ? "met" : "not met")}'; } # a ≥ share × b
  {
    echo "targets: one instance's GET ≥ 25 % of /healthz: $(pct "$g32" "$h32") at 32 conns ($(verdict "$g32" "$h32" 0.25)), $(pct "$g_wide" "$h_wide") at $WIDE ($(verdict "$g_wide" "$h_wide" 0.25))"
    echo "targets: three instances' GET ≥ one's: $(pct "$t32" "$g32") at 32 conns ($(verdict "$t32" "$g32")), $(pct "$t_wide" "$g_wide") at $WIDE ($(verdict "$t_wide" "$g_wide"))"
    echo "targets: POSTs ≥ 2,000 /s on one instance: $p1 ($(verdict "$p1" 2000)); over three: $p3"
  } | tee -a "$WORK/tries"
}

: >"$WORK/table"
: >"$WORK/rounds"
: >"$WORK/tries"
case "$BACKENDS" in
  sqlite) bench_backend sqlite ;;
  postgres) bench_backend postgres ;;
  both) bench_backend sqlite; bench_backend postgres ;;
  multi)
    pg_isready -h 127.0.0.1 -p 5432 -q || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS samverkan_bench_multi WITH (FORCE)" -c "CREATE DATABASE samverkan_bench_multi"
    bench_multi "${PG_ADMIN%/*}/samverkan_bench_multi" ;;
  *) echo "usage: $0 [sqlite|postgres|both|multi]" >&2; exit 2 ;;
esac

{
  echo "## $(date -u +%Y-%m-%dT%H:%MZ) — $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, wrk -t2 on the same machine, $DURATION per run"
  echo
  echo "| backend | scenario | conns | req/s | p50 / p99 | errors | steal |"
  echo "|---|---|---|---|---|---|---|"
  cat "$WORK/table"
  echo
  echo "Rounds of the baseline and the guard's read (alternating; steal = CPU the hypervisor took during the read; the table shows the median undisturbed round):"
  echo
  sed 's/^/- /' "$WORK/rounds"
  echo
  echo "Every try of the other scenarios (a try with steal > $MAX_STEAL % is run again; the table shows the least disturbed):"
  echo
  sed 's/^/- /' "$WORK/tries"
  echo
} | tee -a "$RESULTS"
