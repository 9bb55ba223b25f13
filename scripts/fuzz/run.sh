#!/usr/bin/env bash
# Coverage-guided fuzzing of dashbatch's parsers and renderer with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz/run.sh SECONDS_PER_TARGET [TARGET[=SECONDS] ...]
#
# Runs each target (all of them when none is named) for SECONDS_PER_TARGET, or for the
# SECONDS given after its name, one after the other in a single process each (one core; this
# is libFuzzer's default, `-jobs=1` would only move the same single worker into a child process
# logging to fuzz-0.log). Everything runs under `nice -n 19`. Prints, per target, the
# executions (libFuzzer's final `stat::number_of_executed_units`), exec/s, crashes found and the
# corpus size, then a total line. Exits 1 if any target found a crash (panic, abort, a hang
# over 10 s, or more than 2 GB of memory), 2 on a usage or build error.
#
# The grown corpus lives in fuzz/corpus/<target>/ (not committed); the committed seeds in
# fuzz/seeds/<target>/ are read too. Crash inputs land in fuzz/artifacts/<target>/, full logs in
# fuzz/logs/<target>.log. Reproduce one with
#   cargo +nightly fuzz run -s none <target> fuzz/artifacts/<target>/<file>
set -euo pipefail

TARGETS=(job_file csv_reader jsonl_reader template_render result_line)
# Memory-safety bugs in safe Rust show up as panics; without AddressSanitizer a run is about
# twice as fast. Set FUZZ_SANITIZER=address to use it anyway.
SANITIZER="${FUZZ_SANITIZER:-none}"

usage() {
    echo "usage: $0 SECONDS_PER_TARGET [TARGET[=SECONDS] ...]   (targets: ${TARGETS[*]})" >&2
    exit 2
}
[[ $# -ge 1 && $1 =~ ^[0-9]+$ && $1 -gt 0 ]] || usage
default_seconds=$1
shift

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fuzz_dir="$root/fuzz"
cd "$root"

declare -a run_names=() run_seconds=()
if [[ $# -eq 0 ]]; then
    for target in "${TARGETS[@]}"; do
        run_names+=("$target")
        run_seconds+=("$default_seconds")
    done
else
    for argument in "$@"; do
        name="${argument%%=*}"
        seconds="$default_seconds"
        [[ $argument == *=* ]] && seconds="${argument#*=}"
        [[ " ${TARGETS[*]} " == *" $name "* && $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || usage
        run_names+=("$name")
        run_seconds+=("$seconds")
    done
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "error: a nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing; installing it from crates.io" >&2
    nice -n 19 cargo install cargo-fuzz --locked
fi

echo "building the fuzz targets (sanitizer: $SANITIZER)" >&2
if ! nice -n 19 cargo +nightly fuzz build -s "$SANITIZER" >&2; then
    echo "error: the fuzz targets do not build" >&2
    exit 2
fi

mkdir -p "$fuzz_dir/logs"
# A final statistic libFuzzer prints with -print_final_stats=1 (`stat::NAME:   VALUE`).
final_stat() { grep -oE "stat::$1:[[:space:]]*[0-9]+" "$2" | tail -1 | grep -oE '[0-9]+$' || true; }
count_files() { find "$1" -maxdepth 1 -type f 2>/dev/null | wc -l; }
count_artifacts() {
    find "$fuzz_dir/artifacts/$1" -maxdepth 1 -type f \
        \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) 2>/dev/null | wc -l
}

total_executions=0
total_crashes=0
total_seconds=0
failed=0
report=()
printf '%-16s %8s %14s %10s %8s %18s\n' target seconds executions exec/s crashes corpus >&2
for index in "${!run_names[@]}"; do
    target="${run_names[$index]}"
    seconds="${run_seconds[$index]}"
    corpus="$fuzz_dir/corpus/$target"
    mkdir -p "$corpus" "$fuzz_dir/artifacts/$target"
    log="$fuzz_dir/logs/$target.log"
    dict=()
    [[ -f $fuzz_dir/dicts/$target.dict ]] && dict=("-dict=$fuzz_dir/dicts/$target.dict")
    before=$(count_artifacts "$target")
    set +e
    nice -n 19 cargo +nightly fuzz run -s "$SANITIZER" "$target" "$corpus" "$fuzz_dir/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "${dict[@]}" >"$log" 2>&1
    status=$?
    set -e
    crashes=$(( $(count_artifacts "$target") - before ))
    if [[ $status -ne 0 && $crashes -eq 0 ]]; then
        # libFuzzer stopped without writing an input (e.g. it could not start): count it.
        crashes=1
        echo "$target: cargo fuzz exited with $status and no crash input; see $log" >&2
    fi
    executions=$(final_stat number_of_executed_units "$log")
    rate=$(final_stat average_exec_per_sec "$log")
    executions=${executions:-0}
    rate=${rate:-0}
    corpus_files=$(count_files "$corpus")
    corpus_kib=$(( $(find "$corpus" -maxdepth 1 -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}') / 1024 ))
    line=$(printf '%-16s %8s %14s %10s %8s %18s' "$target" "$seconds" "$executions" "$rate" "$crashes" "${corpus_files} files, ${corpus_kib} KiB")
    echo "$line" >&2
    report+=("$line")
    if [[ $crashes -gt 0 ]]; then
        failed=1
        grep -E '^(thread .* panicked|==[0-9]+== ?ERROR|SUMMARY|Test unit written to|ALARM|.*out-of-memory)' "$log" | head -5 | sed "s/^/    /" >&2 || true
    fi
    total_executions=$((total_executions + executions))
    total_crashes=$((total_crashes + crashes))
    total_seconds=$((total_seconds + seconds))
done

echo
printf '%-16s %8s %14s %10s %8s %18s\n' target seconds executions exec/s crashes corpus
for line in "${report[@]}"; do echo "$line"; done
printf '%-16s %8s %14s %10s %8s\n' total "$total_seconds" "$total_executions" \
    "$(( total_seconds > 0 ? total_executions / total_seconds : 0 ))" "$total_crashes"
exit "$failed"
