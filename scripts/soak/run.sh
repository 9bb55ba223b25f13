#!/usr/bin/env bash
# Soak: the crash harness (tests/it/crash.rs) for many cycles. Every cycle kills a run with
# SIGKILL at a named step or at a random moment, or starts several processes on one run directory
# together (`run` and `resume`, one of them killed at a random moment), then resumes the run until
# it finishes and checks every invariant against the simulator's billing ledger (no duplicate
# batch, no row lost or billed twice, the report's cost equal to what was billed, no key on disk).
#
#   bash scripts/soak/run.sh [RANDOM_CYCLES] [CONCURRENT_CYCLES]
#
# The 18 named-step cycles always run; the defaults make 1,018 cycles in all. The binaries are
# built once and copied to target/soak/, so editing or rebuilding the tree during a long soak
# does not change what is being soaked. The totals line is printed at the end and kept in
# target/test-summaries/crash.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."

random_cycles="${1:-700}"
concurrent_cycles="${2:-300}"

cargo build --locked --bin dashbatch
test_binary=$(cargo test --locked --test it --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message["target"]["name"] == "it" and message.get("executable"):
        print(message["executable"])')
built_from=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src tests Cargo.toml Cargo.lock || echo "+uncommitted")
mkdir -p target/soak
cp target/debug/dashbatch target/soak/dashbatch
cp "$test_binary" target/soak/it

started=$(date +%s)
DASHBATCH_TEST_BINARY="$PWD/target/soak/dashbatch" \
DASHBATCH_CRASH_RANDOM_CYCLES="$random_cycles" \
DASHBATCH_CRASH_CONCURRENT_CYCLES="$concurrent_cycles" \
    target/soak/it crash::killing_a_run_anywhere_never_duplicates_loses_or_miscounts --exact --nocapture
ended=$(date +%s)

echo "== soak summary ($(date -u +%Y-%m-%dT%H:%MZ), $((ended - started)) s, binaries built from $built_from)"
cat target/test-summaries/crash.txt
