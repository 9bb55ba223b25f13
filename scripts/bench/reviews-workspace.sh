# Sourced by the benchmarks over generated reviews (duckdb-side-by-side.sh, makespan.sh): with
# BENCH_NAME set, makes target/bench-$BENCH_NAME/$ROWS (default 1,000,000 rows) holding
# reviews.csv (generate_reviews.py, made once) and a copy of reviews.toml, and sets root, rows,
# out (that directory), python (the project's Python environment) and XDG_CACHE_HOME.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
rows="${ROWS:-1000000}"
out="$root/target/bench-$BENCH_NAME/$rows"
mkdir -p "$out"
python="$(bash "$root/scripts/python-env.sh")"
export XDG_CACHE_HOME="$out/cache"
[ -f "$out/reviews.csv" ] || python3 "$root/scripts/bench/generate_reviews.py" "$rows" "$out/reviews.csv"
cp "$root/scripts/bench/reviews.toml" "$out/reviews.toml"
