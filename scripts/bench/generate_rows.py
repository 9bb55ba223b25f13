#!/usr/bin/env python3
"""Writes a large CSV of synthetic review rows for the memory and throughput benchmark.

    python3 scripts/bench/generate_rows.py ROWS OUTPUT.csv

Each row has an id and a review-like text mixing English and Chinese (built by cycling through
fixed word lists, so the file is the same on every machine). Only the standard library is used.
"""

import csv
import sys

ENGLISH = "the coffee was fresh and the package arrived quickly but the lid was cracked".split()
CHINESE = list("这家店的服务很好价格也公道下次还会再来但是包装有点简陋")


def main() -> None:
    rows = int(sys.argv[1])
    path = sys.argv[2]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for index in range(rows):
            words = " ".join(ENGLISH[(index + k) % len(ENGLISH)] for k in range(12))
            hanzi = "".join(CHINESE[(index * 7 + k) % len(CHINESE)] for k in range(16))
            writer.writerow([f"r{index:08d}", f"{words}. {hanzi}"])


if __name__ == "__main__":
    main()
