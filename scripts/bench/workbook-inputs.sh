#!/usr/bin/env bash
# The "Workbooks and other compressions" figures of BENCHMARKS.md:
#  1. planning (`dashbatch validate`) of a 300,000-row .xlsx (typed columns, written by openpyxl)
#     next to a pandas script doing the same (read_excel with openpyxl, render, write the JSONL);
#  2. planning the 1,000,000-row CSV of text-inputs.sh zstd-, xz- and bzip2-compressed, next to
#     it plain.
# Each pair timed in turn (A B A B ...) by /usr/bin/time, RUNS times each (default 3); quote the
# medians.
#
#   cargo build --release && bash scripts/bench/workbook-inputs.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/target/bench-text"
mkdir -p "$out"
python="$(bash "$root/scripts/python-env.sh")"
binary="$root/target/release/dashbatch"
export XDG_CACHE_HOME="$out/cache"
if [ ! -f "$out/big.csv" ]; then
  python3 "$root/scripts/bench/generate_rows.py" 1000000 "$out/big.csv"
fi
if [ ! -f "$out/workbook.xlsx" ]; then
  "$python" - "$out/big.csv" "$out/workbook.xlsx" <<'PY'
import csv, datetime, sys
import openpyxl
book = openpyxl.Workbook(write_only=True)
sheet = book.create_sheet("reviews")
sheet.append(["id", "text", "score", "day"])
with open(sys.argv[1], encoding="utf-8", newline="") as source:
    for index, row in enumerate(csv.DictReader(source)):
        if index == 300_000:
            break
        sheet.append([row["id"], row["text"], index % 5 + 0.5, datetime.date(2024, 1, 1) + datetime.timedelta(days=index % 365)])
book.save(sys.argv[2])
PY
fi
[ -f "$out/big.csv.zst" ] || zstd -q -3 -T1 -o "$out/big.csv.zst" "$out/big.csv"
[ -f "$out/big.csv.xz" ] || xz -k -6 -T1 -c "$out/big.csv" > "$out/big.csv.xz"
[ -f "$out/big.csv.bz2" ] || bzip2 -k -c "$out/big.csv" > "$out/big.csv.bz2"
for name in workbook.xlsx big.csv big.csv.zst big.csv.xz big.csv.bz2; do
  sed "s|^path = \"big.csv\"|path = \"$name\"|" "$root/scripts/bench/big.toml" > "$out/job-$name.toml"
done
pandas_command="$python $root/scripts/bench/pandas_workbook_prepare.py $out/workbook.xlsx $out/pandas-requests.jsonl"
timed() {
  echo "== $*"
  /usr/bin/time -f "%e s wall, %U s user, %S s system, %M KB peak" "$@" >/dev/null
}
for run in $(seq "${RUNS:-3}"); do
  timed "$binary" validate "$out/job-workbook.xlsx.toml" --show 0
  timed $pandas_command
  for name in big.csv big.csv.zst big.csv.xz big.csv.bz2; do
    timed "$binary" validate "$out/job-$name.toml" --show 0
  done
done
