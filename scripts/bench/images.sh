#!/usr/bin/env bash
# The "Images" figures of BENCHMARKS.md: preparing an image job (read each picture, check and
# decode it, embed it as base64, write the request lines into shards) next to what a user would
# write instead, a Python script that base64-encodes each file into the same batch JSONL (with
# no checks), in turn (A B A B ...), RUNS times each (default 3), at ROWS rows (default 2600:
# scikit-image's 26 sample pictures, 100 times; a unique text per row keeps every request distinct).
# Each command is timed by /usr/bin/time (wall, CPU, peak RSS); quote the medians.
#
#   cargo build --release && bash scripts/bench/images.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/target/bench-images"
rows="${ROWS:-2600}"
mkdir -p "$out"
binary="$root/target/release/dashbatch"
pictures="$(bash "$root/scripts/fixtures/sample-images.sh")"
export XDG_CACHE_HOME="$out/cache"
python3 - "$root/fixtures/images/sample-images.csv" "$pictures" "$rows" "$out/images.csv" <<'PY'
import csv, os, sys
listing, pictures, rows, target = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
files = [os.path.join(pictures, os.path.basename(row["file"])) for row in csv.DictReader(open(listing))]
with open(target, "w", newline="") as out:
    writer = csv.writer(out)
    writer.writerow(["id", "file"])
    for number in range(rows):
        writer.writerow([f"p{number}", files[number % len(files)]])
PY
cat > "$out/images.toml" <<TOML
name = "bench-images"
[input]
path = "images.csv"
id_column = "id"
[request]
model = "qwen3-vl-flash"
images = ["{{ file }}"]
template = "Picture {{ id }}: what does it show?"
max_tokens = 20
[reuse]
store = false
TOML
cat > "$out/baseline.py" <<'PY'
# What a user writes without dashbatch: each file base64-encoded into a batch request line.
import base64, csv, json, mimetypes, sys
with open(sys.argv[2], "w") as out:
    for row in csv.DictReader(open(sys.argv[1])):
        mime = mimetypes.guess_type(row["file"])[0] or "image/png"
        data = base64.b64encode(open(row["file"], "rb").read()).decode()
        body = {"model": "qwen3-vl-flash", "max_tokens": 20, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}},
            {"type": "text", "text": f"Picture {row['id']}: what does it show?"}]}]}
        out.write(json.dumps({"custom_id": row["id"], "method": "POST", "url": "/v1/chat/completions", "body": body}) + "\n")
PY
timed() {
  echo "== $*"
  /usr/bin/time -f "%e s wall, %U s user, %S s system, %M KB peak" "$@" >/dev/null
}
for run in $(seq "${RUNS:-3}"); do
  timed "$binary" validate "$out/images.toml" --provider sim --show 0
  timed python3 "$out/baseline.py" "$out/images.csv" "$out/baseline.jsonl"
done
