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
BENCH_NAME=makespan source "$(dirname "$0")/reviews-workspace.sh"
rm -rf "$out/run" "$out/run-output.parquet"
exec "$python" "$root/scripts/bench/makespan.py" "$root/target/release/dashbatch" \
  "$out/reviews.toml" "$out/run" "${CAPACITY:-20}" "${TIME_SCALE:-100}" "${TRANSIENT:-0.02}"
