#!/usr/bin/env bash
# The makespan figure of BENCHMARKS.md: a job of ROWS rows (default 1,000,000 real Chinese
# reviews, generate_reviews.py; the job scripts/bench/reviews.toml) run end to end against a
# simulator with a shared capacity (CAPACITY request lines per simulated second across all
# batches, first come first served; TIME_SCALE simulated seconds per real second) whose batches
# fail TRANSIENT of their lines (default 2%) with transient errors. Prints the wall time to the
# last output row, the ideal (every line the simulator ran / the capacity in real time) and their
# ratio. Defaults: 20 lines/s at a time scale of 100, 2,000 lines a real second, so the ideal of
# a million rows is about eight and a half minutes.
#
#   cargo build --release && bash scripts/bench/makespan.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
rows="${ROWS:-1000000}"
out="$root/target/bench-makespan/$rows"
mkdir -p "$out"
python="$(bash "$root/scripts/python-env.sh")"
export XDG_CACHE_HOME="$out/cache"
[ -f "$out/reviews.csv" ] || python3 "$root/scripts/bench/generate_reviews.py" "$rows" "$out/reviews.csv"
cp "$root/scripts/bench/reviews.toml" "$out/reviews.toml"
rm -rf "$out/run" "$out/run-output.parquet"
exec "$python" "$root/scripts/bench/makespan.py" "$root/target/release/dashbatch" \
  "$out/reviews.toml" "$out/run" "${CAPACITY:-20}" "${TIME_SCALE:-100}" "${TRANSIENT:-0.02}"
