#!/usr/bin/env bash
# Soak: two `dashbatch run --run-dir` started at the same moment on a directory that does not
# exist yet, CYCLES times, against one standalone simulator. Both processes are pinned to one
# core (taskset), which widens the moment between the winner creating its ledger and filling it,
# where a refused process that wrote to the ledger used to fail the winner (both exited 2, no
# batch was created). Every cycle must end with one process finished (exit 0) and the other
# refused as busy (exit 2), and the simulator must have billed each row exactly once.
#
#   bash scripts/soak/founding-race.sh [CYCLES] [BINARY]
#
# BINARY defaults to a debug build of the tree, copied to target/soak/ first. The totals line is
# printed at the end and kept in target/test-summaries/founding-race.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."

cycles="${1:-300}"
binary="${2:-}"
if [ -z "$binary" ]; then
    cargo build --locked --bin dashbatch
    mkdir -p target/soak
    cp target/debug/dashbatch target/soak/dashbatch-founding
    binary="$PWD/target/soak/dashbatch-founding"
fi
rows=60
work=$(mktemp -d)
trap 'kill "$simulator" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
python3 - "$rows" <<'EOF'
import sys
rows = int(sys.argv[1])
with open("in.csv", "w") as table:
    table.write("id,text\n")
    for row in range(rows):
        table.write(f"r{row},review number {row}\n")
with open("job.toml", "w") as job:
    job.write('name = "race"\n[input]\npath = "in.csv"\nid_column = "id"\n'
              '[request]\nmodel = "qwen-flash"\ntemplate = "Topic of: {{ text }}"\nmax_tokens = 10\n'
              '[output]\npath = "out.parquet"\n')
EOF
export XDG_CACHE_HOME="$work/cache" DASHSCOPE_API_KEY=sk-soak DASHBATCH_STORE=off
"$binary" sim serve --addr 127.0.0.1:0 2>simulator.log &
simulator=$!
base_url=""
for _ in $(seq 1 100); do
    base_url=$(grep -o 'http://[^ ]*' simulator.log | head -1 || true)
    [ -n "$base_url" ] && break
    sleep 0.1
done
root_url=${base_url%%/compatible-mode*}

failures=0
started=$(date +%s)
for cycle in $(seq 1 "$cycles"); do
    run=(run job.toml --provider dashscope --base-url "$base_url" --run-dir "run$cycle" --quiet)
    taskset -c 0 "$binary" "${run[@]}" >/dev/null 2>"first.err" &
    first=$!
    taskset -c 0 "$binary" "${run[@]}" >/dev/null 2>"second.err" &
    second=$!
    first_code=0; wait "$first" || first_code=$?
    second_code=0; wait "$second" || second_code=$?
    codes="$first_code $second_code"
    if [ "$codes" != "0 2" ] && [ "$codes" != "2 0" ]; then
        failures=$((failures + 1))
        echo "cycle $cycle: exit codes $codes"
        sed 's/^/  first: /' first.err | head -3
        sed 's/^/  second: /' second.err | head -3
    fi
    rm -rf "run$cycle"
done
billed=$(curl -s "$root_url/_sim/ledger" | python3 -c '
import json, sys
ledger = json.load(sys.stdin)
counts = ledger["bill_count_per_custom_id"]
print(sum(counts.values()), max(counts.values(), default=0))')
ended=$(date +%s)
read -r bills most <<<"$billed"
expected_bills=$(((cycles - failures) * rows))
summary="founding race cycles: $cycles, failed cycles: $failures, bills: $bills (expected $expected_bills), most bills of one row: $most (at most one a cycle: $cycles)"
cd - >/dev/null
mkdir -p target/test-summaries
echo "$summary" | tee target/test-summaries/founding-race.txt
echo "== $(date -u +%Y-%m-%dT%H:%MZ), $((ended - started)) s, binary $binary"
[ "$failures" -eq 0 ] && [ "$bills" -eq "$expected_bills" ] && [ "$most" -le "$cycles" ]
