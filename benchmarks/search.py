"""Search and cross-validation on the real data (`tune`, `train --folds`), as a markdown table.

Goals (2 CPU cores): a flowers search of at most 60 minutes whose chosen config beats the
hand-found one on data the search never saw; `--folds 5` on the 2,000-sentence SST-2 subset
(sentiment_lstm, from an IMDB run's encoder) and on flowers, with mean +- std.

flowers_search: Hyperband over configs/flowers_space.toml (head and fine-tuning rates, layers
unfrozen, label smoothing, dropout) from configs/flowers.toml, every trial holding out the same
20% test split (`--test-split 0.2`, seed 42) that no choice is made on; the chosen trial's test
accuracy is reported beside flowers.toml's on the same split (`--baseline RUN`: the
flowers_test row of plant_accuracy.py, seed 42).

flowers_search_bayesian: the same space and split, searched by Bayesian optimisation over 10
full-length trials; its first trial is flowers.toml itself, the baseline.

imdb_search: the same for sentiment_lstm on IMDB split by film (the test split too): a Bayesian
search of 10 trials over configs/imdb_space.toml from configs/imdb.toml, against imdb_test,
configs/imdb.toml itself on the same test split (`--baseline` defaults to that row's run).

    python benchmarks/search.py --rows flowers_search --baseline runs/benchmarks/plant_cnn/flowers_test
    python benchmarks/search.py --rows flowers_search_bayesian
    python benchmarks/search.py --rows imdb_test imdb_search
    python benchmarks/search.py --rows sst2_2k_folds --imdb runs/benchmarks/sentiment_lstm/imdb
    python benchmarks/search.py --rows flowers_folds
"""

import argparse
import json
import os
import subprocess
import sys
import time

import runs

PLANT = os.path.join("projects", "plant_cnn", "configs")
SENTIMENT = os.path.join("projects", "sentiment_lstm", "configs")
ROWS = {
    "flowers_search": ("plant_cnn", ["tune", "--config", f"{PLANT}/flowers.toml", "--space",
                                     f"{PLANT}/flowers_space.toml", "--tuner", "hyperband", "--max-trials", "26",
                                     "--test-split", "0.2", "--data-dir", "{data}/flowers", "--tune-dir", "{out}"]),
    # The same space and split, Bayesian over full-length trials; its first trial is flowers.toml.
    "flowers_search_bayesian": ("plant_cnn", ["tune", "--config", f"{PLANT}/flowers.toml", "--space",
                                              f"{PLANT}/flowers_space.toml", "--tuner", "bayesian", "--max-trials",
                                              "10", "--test-split", "0.2", "--data-dir", "{data}/flowers",
                                              "--tune-dir", "{out}"]),
    "imdb_test": ("sentiment_lstm", ["train", "--config", f"{SENTIMENT}/imdb.toml", "--test-split", "0.2",
                                     "--data-dir", "{data}/imdb", "--output-dir", "{out}"]),
    "imdb_search": ("sentiment_lstm", ["tune", "--config", f"{SENTIMENT}/imdb.toml", "--space",
                                       f"{SENTIMENT}/imdb_space.toml", "--tuner", "bayesian", "--max-trials", "10",
                                       "--test-split", "0.2", "--data-dir", "{data}/imdb", "--tune-dir", "{out}"]),
    "sst2_2k_folds": ("sentiment_lstm", ["train", "--config", f"{SENTIMENT}/sst2_2k_baseline.toml", "--data-dir",
                                         "{data}/sst2", "--init-from", "{imdb}", "--folds", "5", "--output-dir",
                                         "{out}"]),
    # Head-only trials, augmentation off: the same random search twice (same seed, so the same
    # settings trial by trial), with the backbone's outputs cached and without.
    "flowers_head_trials": ("plant_cnn", ["tune", "--config", f"{PLANT}/flowers.toml", "--space",
                                          f"{PLANT}/flowers_head_space.toml", "--tuner", "random", "--max-trials", "8",
                                          "--fine-tune-epochs", "0", "--no-horizontal-flip", "--rotation-range", "0",
                                          "--zoom-range", "0", "--test-split", "0.2", "--data-dir", "{data}/flowers"]),
    "flowers_folds": ("plant_cnn", ["train", "--config", f"{PLANT}/flowers.toml", "--data-dir", "{data}/flowers",
                                    "--folds", "5", "--output-dir", "{out}"]),
}
# A search row's hand-found config: its name, and the row whose run scores it on the same test
# split (None: `--baseline RUN`; TRIAL_00: the search's first trial, which is the base config).
TRIAL_00 = os.path.join("trials", "00")
HAND_FOUND = {"flowers_search": ("flowers.toml", None), "imdb_search": ("imdb.toml", "imdb_test"),
              "flowers_search_bayesian": ("flowers.toml (trial 00)", TRIAL_00)}


def run_row(name, args):
    project, command = ROWS[name]
    out = os.path.join(args.out, project, name)
    if name == "flowers_head_trials":
        for cache in ("cache", "no-cache"):
            _run(project, [*command, f"--{cache}-frozen-prefix", "--tune-dir", os.path.join(out, cache)], args,
                 os.path.join(out, cache))
        return out
    return _run(project, command, args, out)


def _run(project, command, args, out):
    command = [a.format(data=os.path.abspath(args.data), out=out, imdb=args.imdb or "") for a in command]
    print(f"== {' '.join(command)}", flush=True)
    start = time.time()
    subprocess.run([sys.executable, "-m", f"projects.{project}", *command], cwd=runs.REPO, check=True,
                   env=dict(os.environ, TF_FINETUNE_DATA=os.path.abspath(args.data)))
    seconds = time.time() - start
    with open(os.path.join(out, "wall_seconds.json"), "w") as f:
        json.dump({"seconds": seconds, "command": " ".join(command)}, f)
    return out


def describe(name, out, baseline):
    """`(what, result, time, command)` of a finished row."""
    if name == "flowers_head_trials":
        return describe_head_trials(out)
    with open(os.path.join(out, "wall_seconds.json")) as f:
        wall = json.load(f)
    minutes = wall["seconds"] / 60
    if name.endswith("_test"):
        _, metrics, _, _ = runs.read_run(out)
        return ("the hand-found config, 20% test split held out", f"validation {100 * metrics['accuracy']:.2f}%, "
                f"**test {100 * metrics['test']['accuracy']:.2f}%**", f"{minutes:.1f} min", wall["command"])
    if name.endswith("_folds"):
        with open(os.path.join(out, "cross_validation.json")) as f:
            summary = json.load(f)
        acc = summary["validation"]["accuracy"]
        folds = "/".join(f"{100 * row['accuracy']:.2f}" for row in summary["per_fold"])
        return ("5-fold cross-validation, seed 42", f"accuracy {100 * acc['mean']:.2f} +- {100 * acc['std']:.2f}% "
                f"(folds {folds})", f"{minutes:.1f} min", wall["command"])
    with open(os.path.join(out, "results.csv")) as f:
        lines = f.read().splitlines()
    with open(os.path.join(out, "search.json")) as f:
        search = json.load(f)
    trials = len(lines) - 1
    best = lines[1].split(",")[0]
    _, metrics, config, _ = runs.read_run(os.path.join(out, "trials", best))
    fields = [field["name"] for field in search["space"]] + (["epoch_budget"] if search["max_epochs"] else [])
    chosen = ", ".join(f"{k}={config[k]}" for k in fields)
    result = (f"chosen trial {best} ({chosen}): validation {100 * metrics['accuracy']:.2f}%, "
              f"**test {100 * metrics['test']['accuracy']:.2f}%**")
    hand, row = HAND_FOUND[name]
    if row == TRIAL_00:
        baseline = os.path.join(out, row)
    elif row and not baseline:
        baseline = os.path.join(os.path.dirname(out), row)
    if baseline and os.path.exists(baseline):
        _, base, _, _ = runs.read_run(baseline)
        result += (f"; {hand} on the same split: validation {100 * base['accuracy']:.2f}%, "
                   f"test {100 * base['test']['accuracy']:.2f}%")
    what = f"{search['tuner'].capitalize()}, {trials} trials, {trials / (wall['seconds'] / 3600):.0f} trials/hour"
    return what, result, f"{minutes:.1f} min", wall["command"]


def describe_head_trials(out):
    """Trials per hour and accuracy, cached against uncached, trial by trial."""
    rows, walls = {}, {}
    for cache in ("cache", "no-cache"):
        with open(os.path.join(out, cache, "wall_seconds.json")) as f:
            walls[cache] = json.load(f)
        with open(os.path.join(out, cache, "results.csv")) as f:
            rows[cache] = {line.split(",")[0]: line.split(",") for line in f.read().splitlines()[1:]}
    trials = len(rows["cache"])
    rates = {k: trials / (w["seconds"] / 3600) for k, w in walls.items()}
    pairs = []
    for trial in sorted(rows["cache"]):
        _, cached, config, _ = runs.read_run(os.path.join(out, "cache", "trials", trial))
        _, plain, _, _ = runs.read_run(os.path.join(out, "no-cache", "trials", trial))
        pairs.append(f"{100 * cached['accuracy']:.1f}/{100 * plain['accuracy']:.1f}")
    seconds = {k: sum(float(r[-1]) for r in v.values()) for k, v in rows.items()}
    what = (f"{trials} head-only trials (6 epochs, augmentation off), cached backbone outputs vs not, same "
            f"settings trial by trial")
    result = (f"**{rates['cache']:.0f} vs {rates['no-cache']:.0f} trials/hour ({rates['cache'] / rates['no-cache']:.1f}x)**"
              f"; training time {seconds['cache']:.0f} vs {seconds['no-cache']:.0f} s "
              f"({seconds['no-cache'] / max(seconds['cache'], 1):.1f}x); validation accuracy per trial, cached/uncached: "
              f"{', '.join(pairs)}")
    minutes = f"{walls['cache']['seconds'] / 60:.1f} + {walls['no-cache']['seconds'] / 60:.1f} min"
    return what, result, minutes, walls["cache"]["command"].replace(" --cache-frozen-prefix", " [--no]-cache-frozen-prefix")


def main():
    measured = runs.stamp()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--out", default=runs.DEFAULT_OUT)
    parser.add_argument("--data", default=runs.DEFAULT_DATA)
    parser.add_argument("--imdb", help="An IMDB run of sentiment_lstm (sst2_2k_folds starts from its encoder).")
    parser.add_argument("--baseline", help="flowers.toml's run on the same test split (flowers_search; "
                                           "imdb_search: the imdb_test row's run unless given).")
    parser.add_argument("--table-only", action="store_true", help="Re-print the table of finished rows.")
    runs.add_no_write(parser)
    args = parser.parse_args()
    lines = ["| row | what | result | wall time | command |", "|---|---|---|---|---|"]
    for name in args.rows:
        out = os.path.join(args.out, ROWS[name][0], name)
        if not args.table_only:
            out = run_row(name, args)
        what, result, minutes, command = describe(name, out, args.baseline)
        lines.append(f"| {name} | {what} | {result} | {minutes} | `{ROWS[name][0]} {command}` |")
    table = "\n".join(lines)
    print("\n" + table + "\n")
    intro = runs.about(__doc__) + (
        f"\n\nWritten by `python benchmarks/search.py` (`--rows NAME...`: those rows; `--table-only`: re-read "
        "finished rows), which replaces those rows here and keeps the others. One run per row, seed 42.")
    runs.save(args, "search", "Search and cross-validation", intro, table, measured)


if __name__ == "__main__":
    main()
