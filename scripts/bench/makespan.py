"""The makespan figure of BENCHMARKS.md: how close a whole job comes to the provider's capacity.

Starts `dashbatch sim serve --capacity C --time-scale S` (C request lines per simulated second
shared by all batches, first come first served), makes every batch fail a fraction of its lines
with transient errors, runs the job end to end against it through `--base-url`, and divides the
wall time to the last output row by the ideal: every request line the simulator ran (first tries
and retries) divided by the capacity in real time (C x S lines per real second). Prints the
figures as a table and one JSON line.

    python3 makespan.py BINARY JOB.toml RUN_DIRECTORY CAPACITY TIME_SCALE TRANSIENT_FRACTION

A CAPACITY of 0 runs the simulator without one (every batch at its own pace) and prints no
ratio: the end-to-end figure of end-to-end.sh. SIM_STATE_DIR, when set, keeps the simulator's
files and state in that directory instead of its memory.
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request


def http_json(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", "Bearer makespan")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


def every_batch(base_url):
    batches, after = [], None
    while True:
        url = f"{base_url}/batches?limit=100" + (f"&after={after}" if after else "")
        page = http_json("GET", url)
        data = page.get("data") or []
        batches.extend(data)
        if not page.get("has_more") or not data:
            return batches
        after = data[-1]["id"]


def main():
    binary, job, run_directory, capacity, time_scale, fraction = sys.argv[1:7]
    capacity, time_scale, fraction = float(capacity), float(time_scale), float(fraction)
    simulator_arguments = [binary, "sim", "serve", "--addr", "127.0.0.1:0",
                           "--time-scale", str(time_scale)]
    if capacity > 0:
        simulator_arguments += ["--capacity", str(capacity)]
    if os.environ.get("SIM_STATE_DIR"):
        simulator_arguments += ["--state-dir", os.environ["SIM_STATE_DIR"]]
    simulator = subprocess.Popen(
        simulator_arguments,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base_url = None
        for line in simulator.stderr:
            found = re.search(r"http://\S+", line)
            if found:
                base_url = found.group(0)
                break
        if base_url is None:
            sys.exit("the simulator did not say where it listens")
        root_url = base_url.split("/compatible-mode")[0]
        http_json("PUT", f"{root_url}/_sim/faults", {"routes": {}, "batches": [
            {"batches": "all", "behaviour": {"transient_line_errors": {"fraction": fraction}}}]})
        output = run_directory + "-output.parquet"
        environment = dict(os.environ, DASHSCOPE_API_KEY="makespan-benchmark")
        started = time.monotonic()
        timed = subprocess.Popen(
            os.environ.get("MAKESPAN_WRAPPER", "").split() + ["/usr/bin/time", "-f", "%e s wall, %U s user, %S s system, %M KB peak",
             binary, "run", job, "--provider", "dashscope", "--base-url", base_url,
             "--run-dir", run_directory, "--output", output, "--json"],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Each event with the second it arrived, for a timeline of the run.
        with open(run_directory + "-events.jsonl", "w") as events:
            for line in timed.stdout:
                event = json.loads(line)
                event["seconds_since_start"] = round(time.monotonic() - started, 3)
                events.write(json.dumps(event, ensure_ascii=False) + "\n")
        stderr = timed.stderr.read()
        timed.wait()
        wall = time.monotonic() - started
        # Exit 1 is a finished run with rows that failed (transient errors on every try).
        if timed.returncode not in (0, 1):
            sys.exit(f"the run failed ({timed.returncode}):\n{stderr}")
        batches = every_batch(base_url)
        ran = sum((batch.get("request_counts") or {}).get("total", 0) for batch in batches)
        with open(os.path.join(run_directory, "report.json")) as report_file:
            report = json.load(report_file)
        if capacity <= 0:
            print(json.dumps({
                "batches": len(batches),
                "lines_run": ran,
                "wall_seconds": round(wall, 2),
                "time": stderr.strip().splitlines()[-1],
                "rows": report.get("rows"),
                "rows_by_status": report.get("rows_by_status"),
            }))
            return
        per_real_second = capacity * time_scale
        ideal = ran / per_real_second
        figures = {
            "capacity_lines_per_simulated_second": capacity,
            "time_scale": time_scale,
            "transient_fraction": fraction,
            "batches": len(batches),
            "lines_run": ran,
            "ideal_seconds": round(ideal, 2),
            "makespan_seconds": round(wall, 2),
            "ratio": round(wall / ideal, 4),
            "time": stderr.strip().splitlines()[-1],
            "rows": report.get("rows"),
            "rows_by_status": report.get("rows_by_status"),
        }
        print("| batches | lines run | ideal (s) | makespan (s) | ratio |")
        print("|---|---|---|---|---|")
        print(f"| {len(batches)} | {ran:,} | {ideal:.1f} | {wall:.1f} | {wall / ideal:.3f} |")
        print(figures["time"])
        print(json.dumps(figures))
    finally:
        simulator.terminate()
        simulator.wait()


if __name__ == "__main__":
    main()
