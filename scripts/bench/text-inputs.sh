#!/usr/bin/env bash
# The "Text inputs" figures of BENCHMARKS.md: planning (`dashbatch validate`: read, decode,
# render, check ids, count the shards' lines; before f9510c7 it wrote them) of 1,000,000 rows from a gzip'd GB18030 CSV, next to the same
# rows as a plain UTF-8 CSV, timed in turn (A B A B ...) by /usr/bin/time -v, RUNS times each
# (default 5); quote the medians.
#
#   cargo build --release && bash scripts/bench/text-inputs.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/target/bench-text"
mkdir -p "$out"
if [ ! -f "$out/big.csv" ]; then
  python3 "$root/scripts/bench/generate_rows.py" 1000000 "$out/big.csv"
fi
if [ ! -f "$out/big-gb18030.csv.gz" ]; then
  python3 - "$out/big.csv" "$out/big-gb18030.csv.gz" <<'PY'
import gzip, sys
with open(sys.argv[1], encoding="utf-8") as source, gzip.open(sys.argv[2], "wb", compresslevel=6) as target:
    for line in source:
        target.write(line.encode("gb18030"))
PY
fi
for name in big.csv big-gb18030.csv.gz; do
  sed "s|^path = \"big.csv\"|path = \"$name\"|" "$root/scripts/bench/big.toml" > "$out/job-$name.toml"
done
binary="$root/target/release/dashbatch"
export XDG_CACHE_HOME="$out/cache"
for run in $(seq "${RUNS:-5}"); do
  for name in big-gb18030.csv.gz big.csv; do
    echo "== run $run: $name"
    /usr/bin/time -f "%e s wall, %U s user, %S s system, %M KB peak" \
      "$binary" validate "$out/job-$name.toml" --show 0 >/dev/null
  done
done
