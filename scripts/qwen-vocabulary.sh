#!/usr/bin/env bash
# Prints the path of the Qwen tokenizer vocabulary (`qwen.tiktoken`) that DashScope's PyPI package
# `dashscope` ships, installing it first (through scripts/python-env.sh) when it is missing.
# Tests that need the real tokenizer call this, so they never skip silently: without PyPI they fail.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="$(bash "$root/scripts/python-env.sh")"
"$python" - <<'PY'
import importlib.util, os, sys
spec = importlib.util.find_spec("dashscope")
if spec is None or not spec.submodule_search_locations:
    sys.exit("the `dashscope` package is not installed in the test environment")
path = os.path.join(list(spec.submodule_search_locations)[0], "resources", "qwen.tiktoken")
if not os.path.isfile(path):
    sys.exit(f"`dashscope` does not ship {path}")
print(path)
PY
