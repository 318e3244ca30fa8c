#!/usr/bin/env bash
# The demo: installs what it needs (scripts/setup.sh, idempotent), then runs
# the replicated KV store on a local cluster in network namespaces (the
# agent, three KV replicas, a client load), checks that every acknowledged
# write reads back and the replicas' logs are identical, prints the results
# and the agent's metrics, and removes everything it made. demo/run.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
# --help needs no root and no setup once the dependencies are installed.
for a in "$@"; do
  case "$a" in
    -h|--help) if [ -d node_modules/tsx ]; then exec node --import tsx demo/run.ts --help; fi ;;
  esac
done
bash scripts/setup.sh
# node --import tsx, not the tsx wrapper: Ctrl-C and SIGTERM then reach the
# demo itself, which removes its namespaces before it exits.
exec node --import tsx demo/run.ts "$@"
