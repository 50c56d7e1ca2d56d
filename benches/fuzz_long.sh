#!/usr/bin/env bash
# The long mode of the property tests (issue 8, extended in issue 24): run every property over
# readers of untrusted bytes (archives, requirements, metadata, setup.py, pyproject/setup.cfg,
# wheels, index pages, CI documents) again and again with fresh random seeds for MINUTES
# (default 30), and print how many cases ran.
# A failure prints proptest's minimal input and stops with exit 1.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-30}"
cases="${PROPTEST_CASES:-20000}"
bin=$(cargo test --release --lib --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
copy=$(mktemp -d)/rewheel-props
cp "$bin" "$copy"
properties=$("$copy" proptests archive::tests::properties --list 2>/dev/null | grep -c ': test$')
end=$(( $(date +%s) + minutes * 60 ))
rounds=0
start=$(date +%s)
while [ "$(date +%s)" -lt "$end" ]; do
  if ! RUST_BACKTRACE=0 PROPTEST_CASES="$cases" "$copy" proptests archive::tests::properties -q >/tmp/fuzz_long.last 2>&1; then
    cat /tmp/fuzz_long.last
    echo "FAILED after $rounds rounds"
    exit 1
  fi
  rounds=$((rounds + 1))
done
elapsed=$(( $(date +%s) - start ))
echo "fuzz_long: $rounds rounds × $properties properties × $cases cases = $((rounds * properties * cases)) cases in ${elapsed} s, no failure"
