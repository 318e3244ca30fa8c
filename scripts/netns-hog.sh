#!/usr/bin/env bash
# The network-namespace test files, ROUNDS times in a row (default 3), with a
# CPU hog busy-looping on one core beside them the whole time: a test that
# only passes on an idle machine fails here. One netns file runs at a time
# (they share the host's per-CPU backlogs). Prints one line per file and
# round, then the failures; exits 1 if any.
#
#   bash scripts/netns-hog.sh [ROUNDS] [test/x.netns.test.ts ...]
#
# The hog is pinned to the last CPU (taskset) and killed on exit, also on
# Ctrl-C. Every run's log stays in the printed directory.
set -uo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
shift || true
if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(ls test/*.netns.test.ts); fi
if ! [[ $rounds =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bash scripts/netns-hog.sh [ROUNDS] [test/x.netns.test.ts ...]" >&2
  exit 2
fi

logs=$(mktemp -d /tmp/xseq-netns-hog-XXXXXX)
cpu=$(($(nproc) - 1))
taskset -c "$cpu" sh -c 'while :; do :; done' &
hog=$!
trap 'kill "$hog" 2>/dev/null' EXIT
echo "[netns-hog] hog pid $hog on CPU $cpu; ${#files[@]} files x $rounds rounds; logs in $logs"

failed=()
for round in $(seq 1 "$rounds"); do
  for f in "${files[@]}"; do
    log="$logs/$(basename "$f" .test.ts)-$round.log"
    start=$(date +%s)
    if CI=true npx vitest run "$f" >"$log" 2>&1; then
      result=pass
    else
      result=FAIL
      failed+=("round $round: $f ($log)")
    fi
    echo "[netns-hog] round $round $f: $result in $(($(date +%s) - start)) s"
  done
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "[netns-hog] ${#failed[@]} failed:"
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "[netns-hog] no failures: ${#files[@]} files x $rounds rounds beside a CPU hog"
