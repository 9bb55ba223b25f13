"""What a DuckDB user writes instead of `dashbatch validate` for scripts/bench/reviews.toml: the
CSV read, the same request body built per row (system prompt with the JSON schema, the user
prompt, JSON mode), and one batch JSONL file written. No id check, no limits, no shards.

    python duckdb_prepare.py INPUT.csv OUTPUT.jsonl
"""

import sys

import duckdb

SYSTEM = (
    "You label the sentiment of customer reviews. Answer in JSON only.\n\n"
    "Answer with a single JSON object that fits this JSON Schema, and nothing else:\n"
    '{"additionalProperties":false,"properties":{"sentiment":{"enum":["positive","negative","neutral"],'
    '"type":"string"}},"required":["sentiment"],"type":"object"}'
)

duckdb.sql(
    """
    COPY (
        SELECT review_id AS custom_id, 'POST' AS method, '/v1/chat/completions' AS url,
            {'max_tokens': 20,
             'messages': [{'content': $system, 'role': 'system'},
                          {'content': 'Review ' || review_id || ':' || chr(10) || text || chr(10) || chr(10)
                              || 'Is the reviewer positive, negative or neutral?', 'role': 'user'}],
             'model': 'qwen-flash',
             'response_format': {'type': 'json_object'}} AS body
        FROM read_csv($input, header = true, all_varchar = true)
    ) TO '""" + sys.argv[2].replace("'", "''") + """' (FORMAT json)
    """,
    params={"system": SYSTEM, "input": sys.argv[1]},
)
