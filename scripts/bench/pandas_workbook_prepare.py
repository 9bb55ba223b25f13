"""What a pandas user writes instead of `dashbatch validate` on a workbook: read the sheet with
pandas (openpyxl), render the prompt per row, and write the batch JSONL request lines.

    python pandas_workbook_prepare.py INPUT.xlsx OUTPUT.jsonl
"""

import json
import sys

import pandas

frame = pandas.read_excel(sys.argv[1], engine="openpyxl")
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for row in frame.itertuples(index=False):
        body = {
            "model": "qwen-flash",
            "messages": [{"role": "user", "content": f"Is this review positive? Answer yes or no.\n{row.text}"}],
            "max_tokens": 5,
        }
        line = {"custom_id": str(row.id), "method": "POST", "url": "/v1/chat/completions", "body": body}
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
print(len(frame), "rows")
