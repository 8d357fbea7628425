#!/usr/bin/env bash
# `npm run demo [-- --check | --down]`: install what is needed, then run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node --import ./scripts/ts-loader/register.mjs scripts/demo.ts "$@"
