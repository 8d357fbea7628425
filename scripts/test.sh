#!/usr/bin/env bash
# `npm test`: set up, type-check, run the whole tap suite (unit + integration), and
# end with a plain `N passed, N failed` line for CI.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

echo "[test] type-checking (tsc --noEmit)"
if ! npx tsc --noEmit -p tsconfig.json; then
  echo "[test] type-check failed"
  echo "0 passed, 1 failed"
  exit 1
fi

echo "[test] running tap suite: $* "
log=$(mktemp /tmp/tenet-tap.XXXXXX)
npx tap "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
node scripts/tap-summary.js "$log" "$status"
summary_status=$?
rm -f "$log"
[ "$status" = 0 ] && [ "$summary_status" = 0 ]
