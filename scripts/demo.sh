#!/usr/bin/env bash
# The demo: installs what it needs, then runs a local cluster in network
# namespaces (sequencer host, three receivers, a client), sends a load,
# prints per-receiver counts and the sequencer's counters, and tears down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec npx tsx demo/run.ts "$@"
