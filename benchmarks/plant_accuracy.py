"""Accuracy and training wall time of plant_cnn on the real data, as a markdown table.

Each row is one `python -m projects.plant_cnn train --config ...` run; the table reads the
run's metrics.json. Goals (2 CPU cores): PlantVillage >= 98.5% validation accuracy with
training <= 20 minutes; flowers >= 92%; seed_cnn is the from-scratch baseline.

    python benchmarks/plant_accuracy.py                      # all rows
    python benchmarks/plant_accuracy.py --rows plantvillage  # some rows
    python benchmarks/plant_accuracy.py --table-only RUN...  # re-print from finished runs
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join("projects", "plant_cnn", "configs")
ROWS = {
    "plantvillage": "plantvillage.toml",
    "flowers": "flowers.toml",
    "seed_cnn": "seed_cnn.toml",
}


def run_row(name, out_root, data_root):
    config = os.path.join(CONFIGS, ROWS[name])
    run_dir = os.path.join(out_root, name)
    command = [sys.executable, "-m", "projects.plant_cnn", "train", "--config", config,
               "--output-dir", run_dir]
    env = dict(os.environ, TF_FINETUNE_DATA=data_root)
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    start = time.time()
    subprocess.run(command, cwd=REPO, env=env, check=True)
    print(f"== {name}: finished in {time.time() - start:.0f} s", flush=True)
    return run_dir


def table(run_dirs):
    lines = [
        "| run | dataset | backbone | image px | val images | val accuracy | macro F1 | train time | command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run_dir in run_dirs:
        with open(os.path.join(run_dir, "metrics.json")) as f:
            m = json.load(f)
        with open(os.path.join(run_dir, "config.json")) as f:
            c = json.load(f)
        with open(os.path.join(run_dir, "run.json")) as f:
            r = json.load(f)
        name = os.path.basename(run_dir.rstrip("/"))
        size = c["image_size"] or (150 if c["backbone"] == "seed_cnn" else 224)
        args = r["command"].split(" train ", 1)[-1]
        lines.append(
            f"| {name} | {c['dataset']} | {c['backbone']} | {size} | {m['num_examples']} | "
            f"{100 * m['accuracy']:.2f}% | {m['macro_f1']:.4f} | {m['train_seconds'] / 60:.1f} min | "
            f"`train {args}` |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--out", default=os.path.join(REPO, "runs", "benchmarks"))
    parser.add_argument("--data", default=os.environ.get("TF_FINETUNE_DATA")
                        or os.path.join(REPO, "..", "shared", "data"))
    parser.add_argument("--table-only", nargs="+", metavar="RUN", help="Print the table of finished runs.")
    args = parser.parse_args()
    if args.table_only:
        run_dirs = args.table_only
    else:
        run_dirs = [run_row(name, args.out, os.path.abspath(args.data)) for name in args.rows]
    print()
    print(table(run_dirs))
    print(f"\nMachine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}.")


if __name__ == "__main__":
    main()
