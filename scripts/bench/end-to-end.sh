#!/usr/bin/env bash
# The end-to-end rows of BENCHMARKS.md: a job of ROWS rows (default 5,000,000 real Chinese
# reviews, generate_reviews.py; the job scripts/bench/reviews.toml) run from the table to the
# output against a standalone simulator without a capacity or faults, at a time scale of 100,000
# (a batch's 24 simulated hours pass in a second), its files kept on disk in the bench directory.
# Prints the wall time, CPU times and peak RSS of `dashbatch run` (from /usr/bin/time) as JSON.
# Needs about 3.8 GB of disk for every million rows beside the input's 0.2 GB: 0.8 GB of shards,
# 1 GB of downloaded results, and 1.8 GB the simulator keeps (uploads and results), which
# SIM_PARENT_DIR puts in a new directory there (a tmpfs, say) instead of the bench directory.
# 10,000,000 rows need about 40 GB in all.
#
#   cargo build --release && bash scripts/bench/end-to-end.sh
set -euo pipefail
ROWS="${ROWS:-5000000}" BENCH_NAME=end-to-end source "$(dirname "$0")/reviews-workspace.sh"
rm -rf "$out/run" "$out/run-output.parquet"
simulator=$(mktemp -d "${SIM_PARENT_DIR:-$out}/dashbatch-simulator.XXXXXX")
trap 'rm -rf "$simulator"' EXIT
SIM_STATE_DIR="$simulator" "$python" "$root/scripts/bench/makespan.py" \
  "$root/target/release/dashbatch" "$out/reviews.toml" "$out/run" 0 "${TIME_SCALE:-100000}" 0
