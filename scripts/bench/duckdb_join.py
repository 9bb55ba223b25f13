"""What a DuckDB user writes instead of re-joining a finished dashbatch run of
scripts/bench/reviews.toml: every result line of the run's result files read, its status, answer,
finish reason and tokens taken out, the answer's `sentiment` parsed, the cost worked out at
qwen-flash's batch price, and the lines joined to the input by custom_id into one Parquet file.
No check that every row has exactly one result, no retries or error files told apart, and the
rows come out in whatever order the join gives.

    python duckdb_join.py INPUT.csv 'RUN_DIR/results/*.jsonl' OUTPUT.parquet
"""

import sys

import duckdb

# qwen-flash, DashScope Beijing, batch price in CNY per million tokens (half the realtime
# 0.15 input / 1.5 output: src/pricing/tables/dashscope-beijing.toml).
INPUT_PRICE, OUTPUT_PRICE = 0.075, 0.75

duckdb.sql(
    """
    COPY (
        WITH results AS (
            SELECT custom_id,
                   response.status_code AS status_code,
                   response.request_id AS request_id,
                   response.body.choices[1].message.content AS content,
                   response.body.choices[1].finish_reason AS finish_reason,
                   response.body.usage.prompt_tokens AS prompt_tokens,
                   response.body.usage.completion_tokens AS completion_tokens,
                   response.body.usage.total_tokens AS total_tokens,
                   error
            FROM read_json($results, format = 'newline_delimited', columns = {
                custom_id: 'VARCHAR',
                response: 'STRUCT(status_code INTEGER, request_id VARCHAR, body STRUCT(
                    choices STRUCT(finish_reason VARCHAR, message STRUCT(content VARCHAR))[],
                    usage STRUCT(prompt_tokens BIGINT, completion_tokens BIGINT, total_tokens BIGINT)))',
                error: 'JSON'
            })
        )
        SELECT input.*,
               CASE WHEN results.status_code = 200 AND results.error IS NULL THEN 'ok'
                    WHEN results.custom_id IS NULL THEN 'missing' ELSE 'failed' END AS status,
               content, finish_reason, prompt_tokens, completion_tokens, total_tokens,
               (prompt_tokens * $input_price + completion_tokens * $output_price) / 1e6 AS cost,
               request_id,
               json_extract_string(content, '$.sentiment') AS sentiment
        FROM read_csv($input, header = true, all_varchar = true) AS input
        LEFT JOIN results ON results.custom_id = input.review_id
    ) TO '""" + sys.argv[3].replace("'", "''") + """' (FORMAT parquet)
    """,
    params={
        "input": sys.argv[1],
        "results": sys.argv[2],
        "input_price": INPUT_PRICE,
        "output_price": OUTPUT_PRICE,
    },
)
