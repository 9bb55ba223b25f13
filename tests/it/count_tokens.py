"""Counts tokens with DashScope's own Qwen tokenizer (the `dashscope` package's QwenTokenizer over
its shipped qwen.tiktoken), as the reference the Rust tokenizer is checked against.

stdin: a JSON list of texts. stdout: a JSON list of their token counts, in order.
"""

import json
import sys

from dashscope.tokenizers import get_tokenizer

tokenizer = get_tokenizer("qwen-plus")
texts = json.load(sys.stdin)
json.dump([len(tokenizer.encode(text)) for text in texts], sys.stdout)
