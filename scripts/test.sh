#!/usr/bin/env bash
# The test command: installs what it needs, type-checks (strict, no emit),
# builds the BPF objects with warnings as errors, then runs every test.
# Privileged tests run as root; with CI=true they run or fail, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "[test] tsc --noEmit"
npx tsc --noEmit -p tsconfig.json

echo "[test] BPF build, -Wall -Werror"
make -s -C bpf clean && make -s -C bpf
make -s -C bench

report=$(mktemp /tmp/xseq-vitest-XXXXXX.json)
trap 'rm -f "$report"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# One plain closing line that any CI can read.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' "$report" || true
exit $status
