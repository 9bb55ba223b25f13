#!/usr/bin/env bash
# Creates (once) the Python environment the interoperability tests use: pandas, polars and
# DuckDB read dashbatch's outputs, the official OpenAI SDK drives the simulator
# (tests/sdk/conformance.py: pydantic 2 strict validation, file expiration policies), and
# DashScope's SDK (`dashscope`) brings the Qwen tokenizer vocabulary (`qwen.tiktoken`) and its
# reference tokenizer for the token-counting tests (see scripts/qwen-vocabulary.sh).
# Prints the path of its python. Idempotent; safe to run from tests in parallel.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${DASHBATCH_PYENV:-$root/target/pyenv}"
stamp="$venv/.dashbatch-ready-v3"
if [ ! -f "$stamp" ]; then
  exec 9>"$root/target/.pyenv.lock"
  flock 9
  if [ ! -f "$stamp" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "pandas>=2" "pyarrow>=14" "polars>=1" "duckdb>=1" "openai>=1.100" "pydantic>=2" "dashscope==2.0.2" >&2
    touch "$stamp"
  fi
fi
echo "$venv/bin/python"
