"""Times pairs of commands in turn and prints their medians and ratios.

    python side_by_side.py RUNS NAME COMMAND_A COMMAND_B [NAME COMMAND_A COMMAND_B ...]

Each pair runs once as a warm-up, then RUNS times A, B, A, B, ..., each under /usr/bin/time
(wall, user and system CPU, peak RSS). A command failing stops everything. Prints each run, then a
Markdown table: the medians of A and B, and the median of the per-run ratios A/B.
"""

import shlex
import statistics
import subprocess
import sys
import tempfile


def timed(command: str) -> dict:
    with tempfile.NamedTemporaryFile("r") as report:
        subprocess.run(
            ["/usr/bin/time", "-f", "%e %U %S %M", "-o", report.name, *shlex.split(command)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wall, user, system, peak_kb = report.read().split()[-4:]
    return {"wall": float(wall), "cpu": float(user) + float(system), "rss_mib": int(peak_kb) / 1024}


def main() -> None:
    runs = int(sys.argv[1])
    arguments = sys.argv[2:]
    pairs = [arguments[index:index + 3] for index in range(0, len(arguments), 3)]
    rows = []
    for name, command_a, command_b in pairs:
        print(f"== {name}\n  A: {command_a}\n  B: {command_b}", flush=True)
        timed(command_a)
        timed(command_b)
        measured = {"A": [], "B": []}
        for run in range(runs):
            for side, command in (("A", command_a), ("B", command_b)):
                figures = timed(command)
                measured[side].append(figures)
                print(f"  run {run + 1} {side}: {figures['wall']:.2f} s wall, {figures['cpu']:.2f} s CPU, "
                      f"{figures['rss_mib']:.1f} MiB peak", flush=True)
        median = lambda side, key: statistics.median(run[key] for run in measured[side])
        ratio = lambda key: statistics.median(a[key] / b[key] for a, b in zip(measured["A"], measured["B"]))
        rows.append((name, median("A", "wall"), median("B", "wall"), ratio("wall"), median("A", "cpu"),
                     median("B", "cpu"), ratio("cpu"), median("A", "rss_mib"), median("B", "rss_mib")))
    print("\n| stage | dashbatch wall | DuckDB wall | wall ratio | dashbatch CPU | DuckDB CPU | CPU ratio "
          "| dashbatch peak RSS | DuckDB peak RSS |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, wall_a, wall_b, wall_ratio, cpu_a, cpu_b, cpu_ratio, rss_a, rss_b in rows:
        print(f"| {name} | {wall_a:.2f} s | {wall_b:.2f} s | {wall_ratio:.2f}× | {cpu_a:.2f} s | {cpu_b:.2f} s "
              f"| {cpu_ratio:.2f}× | {rss_a:.1f} MiB | {rss_b:.1f} MiB |")


if __name__ == "__main__":
    main()
