#!/usr/bin/env bash
# The "dashbatch next to DuckDB" figures of BENCHMARKS.md: on ROWS rows of real Chinese reviews
# (default 1,000,000; generate_reviews.py) and the job scripts/bench/reviews.toml,
#  - prepare: `dashbatch validate` (read, render, check ids and repeated requests, shard; since
#    f9510c7 the shards' lines are counted, not written) next to duckdb_prepare.py (DuckDB
#    building the same request lines into one JSONL file). A run's own planning, which writes,
#    hashes and syncs its shard files, is the `planned` event of end-to-end.sh's run;
#  - join: `dashbatch resume RUN --output other.parquet` on a finished run (the results joined
#    back to the input again, into another file) next to duckdb_join.py (DuckDB joining the same
#    result files to the CSV into Parquet).
# The finished run is made once against the embedded simulator. Each pair runs in turn (A B A B
# ...), RUNS times (default 3) after a warm-up, each timed by /usr/bin/time; the script prints
# every run and a table of medians and ratios (dashbatch / DuckDB, pair by pair).
#
# BENCH_NAME=end-to-end joins the run end-to-end.sh finished instead of making one (a 10M-row
# run needs about 20 GB of disk that way, not twice that). STAGES picks the pairs (default
# "prepare join"); DUCKDB_REQUESTS is where DuckDB's prepare writes its request lines (default
# the bench directory: 8.3 GB at 10M, which must not land in a RAM disk holding the inputs).
#
#   cargo build --release && bash scripts/bench/duckdb-side-by-side.sh
#   ROWS=10000000 RUNS=1 bash scripts/bench/duckdb-side-by-side.sh
#   ROWS=10000000 SIM_PARENT_DIR=/dev/shm bash scripts/bench/end-to-end.sh &&
#     ROWS=10000000 RUNS=1 BENCH_NAME=end-to-end bash scripts/bench/duckdb-side-by-side.sh
set -euo pipefail
BENCH_NAME="${BENCH_NAME:-duckdb}" source "$(dirname "$0")/reviews-workspace.sh"
binary="$root/target/release/dashbatch"
if [ ! -f "$out/run/report.json" ]; then
  rm -rf "$out/run"
  echo "== making the finished run (embedded simulator)" >&2
  /usr/bin/time -f "%e s wall, %U s user, %S s system, %M KB peak" \
    "$binary" run "$out/reviews.toml" --provider sim --run-dir "$out/run" --quiet
fi
pairs=()
for stage in ${STAGES:-prepare join}; do
  case "$stage" in
    prepare) pairs+=("prepare" "$binary validate $out/reviews.toml --show 0"
      "$python $root/scripts/bench/duckdb_prepare.py $out/reviews.csv ${DUCKDB_REQUESTS:-$out/duckdb-requests.jsonl}") ;;
    join) pairs+=("join" "$binary resume $out/run --output $out/joined-again.parquet --quiet"
      "$python $root/scripts/bench/duckdb_join.py $out/reviews.csv $out/run/results/*.jsonl $out/duckdb-joined.parquet") ;;
    *) echo "unknown stage $stage (prepare, join)" >&2; exit 2 ;;
  esac
done
[ "${#pairs[@]}" -gt 0 ] || { echo "STAGES names no stage (prepare, join)" >&2; exit 2; }
exec "$python" "$root/scripts/bench/side_by_side.py" "${RUNS:-3}" "${pairs[@]}"
