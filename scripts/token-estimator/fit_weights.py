#!/usr/bin/env python3
"""Fit the heuristic token counter's weights on the calibration half of the benchmark texts.

Input: the CSV of text features that `cargo run --release --example token_estimator -- TEXTS.jsonl
--features FEATURES.csv` writes. Output: the weights (thousandths of a token per feature), printed as the
match arms of `Feature::weight_thousandths` in src/tokens/heuristic.rs.

The fit minimises the squared *relative* error of each text, (estimate - real) / real, by
non-negative weighted least squares (every row divided by its real count), so that short and long texts count
alike; the same relative error is what BENCHMARKS.md reports. Every language group gets the same
total weight, so the many Chinese and English reviews do not drown code and emoji.

Usage: fit_weights.py FEATURES.csv   (run by scripts/token-estimator/run.sh --fit)
"""

import sys

import numpy as np
import pandas as pd



def fit_non_negative(matrix: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least squares with every weight >= 0: refit without the most negative weight until none is
    negative (no feature may lower a count)."""
    free = list(range(matrix.shape[1]))
    while True:
        solution, *_ = np.linalg.lstsq(matrix[:, free], target, rcond=None)
        if solution.min() >= 0:
            weights = np.zeros(matrix.shape[1])
            weights[free] = solution
            return weights
        free.pop(int(solution.argmin()))


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    table = pd.read_csv(sys.argv[1])
    features = list(table.columns[table.columns.get_loc("qwen_tokens") + 1 :])
    calibration = table[(table["split"] == "calibration") & (table["qwen_tokens"] > 0)]
    group_sizes = calibration["category"].map(calibration["category"].value_counts())
    row_weight = 1.0 / np.sqrt(group_sizes.to_numpy(dtype=float))
    real = calibration["qwen_tokens"].to_numpy(dtype=float)
    matrix = calibration[features].to_numpy(dtype=float)
    scale = row_weight / real
    weights = fit_non_negative(matrix * scale[:, None], real * scale)
    print(f"fitted on {len(calibration)} calibration texts; weights in thousandths of a token:")
    for name, weight in zip(features, weights):
        camel = "".join(part.capitalize() for part in name.split("_"))
        print(f"            Feature::{camel} => {max(0, round(weight * 1000)):_},")


if __name__ == "__main__":
    main()
