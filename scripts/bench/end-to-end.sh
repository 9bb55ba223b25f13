#!/usr/bin/env bash
# The end-to-end rows of BENCHMARKS.md: a job of ROWS rows (default 10,000,000 real Chinese
# reviews, generate_reviews.py; the job scripts/bench/reviews.toml) run from the table to the
# output against a standalone simulator without a capacity or faults, at a time scale of 100,000
# (a batch's 24 simulated hours pass in a second), its files kept on disk in the bench directory.
# Prints the wall time, CPU times and peak RSS of `dashbatch run` (from /usr/bin/time) as JSON.
# Needs about 2.5 GB of disk for every million rows.
#
#   cargo build --release && bash scripts/bench/end-to-end.sh
set -euo pipefail
ROWS="${ROWS:-10000000}" BENCH_NAME=end-to-end source "$(dirname "$0")/reviews-workspace.sh"
rm -rf "$out/run" "$out/run-output.parquet" "$out/simulator"
SIM_STATE_DIR="$out/simulator" "$python" "$root/scripts/bench/makespan.py" \
  "$root/target/release/dashbatch" "$out/reviews.toml" "$out/run" 0 "${TIME_SCALE:-100000}" 0
rm -rf "$out/simulator"
