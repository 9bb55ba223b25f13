"""Reads dashbatch outputs with pandas, polars and DuckDB, as users do, and prints what it saw.

    python read_outputs.py FILE EXPECTED_ROWS [FILE EXPECTED_ROWS ...]

Exits non-zero when a reader fails or a row count or a result column differs.
"""

import json
import sys

import duckdb
import pandas
import polars

RESULT_COLUMNS = ["custom_id", "status", "content", "prompt_tokens", "completion_tokens", "cost"]


def check(path: str, expected_rows: int) -> dict:
    seen = {}
    if path.endswith(".parquet"):
        frame = pandas.read_parquet(path)
        lazy = polars.read_parquet(path)
        duck = duckdb.sql(f"SELECT count(*), count(DISTINCT custom_id), sum(cost) FROM read_parquet('{path}')").fetchall()[0]
    elif path.endswith(".csv"):
        frame = pandas.read_csv(path)
        lazy = polars.read_csv(path)
        duck = duckdb.sql(f"SELECT count(*), count(DISTINCT custom_id), sum(cost) FROM read_csv_auto('{path}')").fetchall()[0]
    else:
        frame = pandas.read_json(path, lines=True)
        lazy = polars.read_ndjson(path)
        duck = duckdb.sql(f"SELECT count(*), count(DISTINCT custom_id), sum(cost) FROM read_json_auto('{path}')").fetchall()[0]
    for name, rows in (("pandas", len(frame)), ("polars", lazy.height), ("duckdb", duck[0])):
        if rows != expected_rows:
            raise SystemExit(f"{path}: {name} read {rows} rows, expected {expected_rows}")
    if duck[1] != expected_rows:
        raise SystemExit(f"{path}: duckdb found {duck[1]} distinct custom_ids, expected {expected_rows}")
    for column in RESULT_COLUMNS:
        if column not in frame.columns or column not in lazy.columns:
            raise SystemExit(f"{path}: column {column} missing")
    seen["rows"] = expected_rows
    seen["pandas_dtypes"] = {column: str(dtype) for column, dtype in frame.dtypes.items()}
    seen["polars_dtypes"] = {column: str(dtype) for column, dtype in zip(lazy.columns, lazy.dtypes)}
    seen["duckdb_cost_sum"] = duck[2]
    if path.endswith(".parquet"):
        # Each column's codec, as DuckDB reads it from the file's metadata (the request ids,
        # random text, are written uncompressed; the rest with Snappy).
        codecs = duckdb.sql(
            f"SELECT DISTINCT path_in_schema, compression FROM parquet_metadata('{path}')"
        ).fetchall()
        seen["parquet_codecs"] = {column: codec for column, codec in codecs}
    return seen


def main() -> None:
    arguments = sys.argv[1:]
    report = {}
    for index in range(0, len(arguments), 2):
        report[arguments[index]] = check(arguments[index], int(arguments[index + 1]))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
