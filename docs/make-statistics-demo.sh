#!/usr/bin/env bash
# Makes docs/statistics-demo.svg, the chart in the README: the demo world (serve --demo)
# plus a year of observations filed through the API by the police, per quarter and place;
# then the statistics API draws it. Needs a release build (cargo build --release), curl, jq.
set -euo pipefail
cd "$(dirname "$0")/.."
W=$(mktemp -d); PORT=18111; BASE=http://127.0.0.1:$PORT
DATABASE_URL=$W/db SAMVERKAN_BIND=127.0.0.1:$PORT SAMVERKAN_DEMO_PASSWORD=demo-pass-12345 RUST_LOG=warn ${CARGO_TARGET_DIR:-target}/release/samverkan serve --demo > $W/log 2>&1 &
PID=$!
trap 'kill $PID; rm -rf $W' EXIT
for _ in $(seq 100); do curl -sf $BASE/readyz >/dev/null && break; sleep 0.1; done
tok() { curl -sf $BASE/api/v1/auth/login -H 'content-type: application/json' -d "{\"username\":\"$1\",\"password\":\"demo-pass-12345\"}" | jq -er .access_token; }
P=$(tok polis1)
# Per quarter and place: how many observations (Sergels torg, Hässelby torg).
i=0
for spec in "1 sergels-torg 23" "1 hasselby-torg 9" "2 sergels-torg 31" "2 hasselby-torg 12" "3 sergels-torg 27" "3 hasselby-torg 3" "4 sergels-torg 18" "4 hasselby-torg 11"; do
  set -- $spec
  for n in $(seq $3); do
    m=$(( ($1 - 1) * 3 + 1 + n % 3 ))
    curl -sf $BASE/api/v1/observations -H "authorization: Bearer $P" -H 'content-type: application/json' \
      -d "{\"place\":\"$2\",\"observed_at\":\"2025-$(printf %02d $m)-$(printf %02d $(( n % 27 + 1 )))T21:00:00Z\",\"category\":\"drug_sale\"}" >/dev/null
  done
done
mkdir -p docs
curl -sf "$BASE/api/v1/statistics/observations.svg?from=2025-01&to=2025-12&group_by=place,quarter" -H "authorization: Bearer $P" > docs/statistics-demo.svg
curl -sf "$BASE/api/v1/statistics/observations?from=2025-01&to=2025-12&group_by=place,quarter" -H "authorization: Bearer $P" | jq -c '.rows[]'
