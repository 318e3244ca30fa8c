#!/usr/bin/env bash
# The flakiness check before an issue about test robustness is resolved:
# runs every network-namespace test file ROUNDS times in a row (default 3)
# with a CPU hog spinning on one core beside them, and exits 1 if any run
# of any file failed. A test that passes only on an idle machine depends on
# its speed: fix the test, do not retry it.
#
#   bash scripts/netns-soak.sh [ROUNDS] [HOG_CPU]     as root; takes long
#
# The hog is this script's own child and is killed on exit, however the
# script ends. Files run one at a time (the etiquette of a shared machine).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
hog_cpu=${2:-0}
if [ "$(id -u)" != 0 ]; then
  echo "netns-soak: needs root (namespaces, BPF)" >&2
  exit 2
fi
make -s -C bpf && make -s -C bench

taskset -c "$hog_cpu" sh -c 'while :; do :; done' &
hog=$!
trap 'kill "$hog" 2>/dev/null || true' EXIT
echo "[soak] CPU hog on CPU $hog_cpu (pid $hog); $rounds round(s)"

failed=()
runs=0
for r in $(seq 1 "$rounds"); do
  for f in test/*.netns.test.ts; do
    runs=$((runs + 1))
    echo "[soak] round $r/$rounds: $f"
    if ! CI=true npx vitest run "$f"; then
      failed+=("round $r: $f")
    fi
  done
done
echo "[soak] $runs file run(s), ${#failed[@]} failed"
for x in "${failed[@]}"; do echo "[soak]   $x"; done
[ "${#failed[@]}" -eq 0 ]
