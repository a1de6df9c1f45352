"""What the accuracy benchmarks share: run one CLI training, read a finished run, name the machine."""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "runs", "benchmarks")
DEFAULT_DATA = os.environ.get("TF_FINETUNE_DATA") or os.path.join(REPO, "..", "shared", "data")


def train(project, name, args, out_root, data_root):
    """Runs `python -m projects.<project> train ARGS --output-dir OUT/<name>`; returns the run dir."""
    run_dir = os.path.join(out_root, name)
    command = [sys.executable, "-m", f"projects.{project}", "train", *args, "--output-dir", run_dir]
    env = dict(os.environ, TF_FINETUNE_DATA=os.path.abspath(data_root))
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    start = time.time()
    subprocess.run(command, cwd=REPO, env=env, check=True)
    print(f"== {name}: finished in {time.time() - start:.0f} s", flush=True)
    return run_dir


def read_run(run_dir):
    """(name, metrics, config, run record) of a finished run directory."""
    records = []
    for file in ("metrics.json", "config.json", "run.json"):
        with open(os.path.join(run_dir, file), encoding="utf-8") as f:
            records.append(json.load(f))
    return (os.path.basename(run_dir.rstrip("/")), *records)


def train_args(record):
    """The `train ...` part of the command a run was started with."""
    return "train " + record["command"].split(" train ", 1)[-1]


def machine():
    return (f"Machine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}.")


def main(doc, project, rows, table):
    """The benchmarks' command line: run the chosen rows (or read finished runs), print the table.

    Args:
        doc: the script's docstring (its first line is the description).
        project: the project package name.
        rows: row name -> `train` arguments; `{data}` is replaced by the data root and
            `{name}` by the run directory of row `name` (for rows that start from another).
        table: `(run_dirs) -> markdown table`.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(rows), choices=list(rows))
    parser.add_argument("--out", default=DEFAULT_OUT, help="Runs go to OUT/<project>/<row>.")
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--seeds", nargs="+", type=int, metavar="SEED",
                        help="Run each row once per seed (run names get a _seed<N> suffix).")
    parser.add_argument("--table-only", nargs="+", metavar="RUN", help="Print the table of finished runs.")
    args = parser.parse_args()
    if args.table_only:
        run_dirs = args.table_only
    else:
        args.out = os.path.join(args.out, project)  # row names repeat across projects (sst2)
        fill = {"data": os.path.abspath(args.data), **{name: os.path.join(args.out, name) for name in rows}}
        run_dirs = []
        for name in args.rows:
            row = [a.format(**fill) for a in rows[name]]
            for seed in args.seeds or [None]:
                if seed is None:
                    run_dirs.append(train(project, name, row, args.out, args.data))
                else:
                    run_dirs.append(train(project, f"{name}_seed{seed}", [*row, "--seed", str(seed)],
                                          args.out, args.data))
    print()
    print(table(run_dirs))
    print()
    print(machine())
