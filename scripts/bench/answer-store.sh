#!/usr/bin/env bash
# The "Answer store" figures of BENCHMARKS.md, for 1,000,000 rows of distinct requests:
#  1. day 1: the whole job on the embedded simulator, which fills the store with 1,000,000 answers;
#  2. planning (`dashbatch validate`: read, render, key each request, look it up, count the shards) with that
#     warm store next to a cold one (the same store emptied by `store prune`), in turn
#     (A B A B ...), RUNS times each (default 3);
#  3. day 2: the unchanged table run again (plan, nothing sent, join from the store), RUNS times.
# Each command is timed by /usr/bin/time (wall, CPU, peak RSS); quote the medians.
#
#   cargo build --release && bash scripts/bench/answer-store.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/target/bench-store"
mkdir -p "$out"
binary="$root/target/release/dashbatch"
export XDG_CACHE_HOME="$out/cache"
export DASHBATCH_SIM_TIME_SCALE=1000000
if [ ! -f "$out/big.csv" ]; then
  python3 "$root/scripts/bench/generate_rows.py" 1000000 "$out/big.csv"
fi
# The id in the prompt makes every request distinct (the generated texts repeat).
for store in warm cold; do
  cat > "$out/$store.toml" <<TOML
name = "bench-store"
[input]
path = "big.csv"
id_column = "id"
[request]
model = "qwen-flash"
template = "Is review {{ id }} positive? Answer yes or no.\n{{ text }}"
max_tokens = 5
[reuse]
store = "$store.sqlite"
TOML
done
timed() {
  echo "== $*"
  /usr/bin/time -f "%e s wall, %U s user, %S s system, %M KB peak" "$@" >/dev/null
}
if [ ! -f "$out/warm.sqlite" ]; then
  rm -rf "$out/day1"
  timed "$binary" run "$out/warm.toml" --provider sim --run-dir "$out/day1" --quiet
fi
if [ ! -f "$out/cold.sqlite" ]; then
  cp "$out/warm.sqlite" "$out/cold.sqlite"
  "$binary" store prune --store "$out/cold.sqlite" --older-than 0m
fi
"$binary" store stats --store "$out/warm.sqlite"
"$binary" store stats --store "$out/cold.sqlite"
for run in $(seq "${RUNS:-3}"); do
  timed "$binary" validate "$out/warm.toml" --provider sim --show 0
  timed "$binary" validate "$out/cold.toml" --provider sim --show 0
done
for run in $(seq "${RUNS:-3}"); do
  rm -rf "$out/day2"
  timed "$binary" run "$out/warm.toml" --provider sim --run-dir "$out/day2" --quiet
done
