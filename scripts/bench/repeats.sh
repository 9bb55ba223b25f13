#!/usr/bin/env bash
# The repeats row of BENCHMARKS.md (eighteenth round): `dashbatch validate` of the reviews job
# (reviews.toml) changed so that half its requests repeat requests planned long before. The
# prompt holds the review's number modulo ROWS/2 and not its text, so each row past the middle
# sends the request of the row ROWS/2 before it, whose key planning spilled and merged long
# ago: what finding a repeat in the key runs costs. Prints /usr/bin/time's figures.
#
#   cargo build --release && ROWS=10000000 bash scripts/bench/repeats.sh
set -euo pipefail
ROWS="${ROWS:-10000000}" BENCH_NAME=end-to-end source "$(dirname "$0")/reviews-workspace.sh"
half=$((rows / 2))
sed -e 's/^name = "bench-reviews"$/name = "bench-repeats"/' \
  -e "s/^template = .*/template = \"Review {{ (review_id | replace(\\\\\"zh-\\\\\", \\\\\"\\\\\") | int) % $half }}: positive, negative or neutral?\"/" \
  "$out/reviews.toml" > "$out/repeats.toml"
grep -q '^name = "bench-repeats"$' "$out/repeats.toml"
grep -q "% $half }}" "$out/repeats.toml"
/usr/bin/time -f "%e s wall, %U s user, %S s system, %M KB peak" \
  "$root/target/release/dashbatch" validate "$out/repeats.toml" > /dev/null
