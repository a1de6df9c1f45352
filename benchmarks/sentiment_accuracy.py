"""Accuracy and training wall time of sentiment_lstm on the real data, as a markdown table.

Each row is one `python -m projects.sentiment_lstm train ...` run; the table reads the
run's metrics.json. Goals (2 CPU cores): IMDB >= 89% on the held-out 20% with training
<= 20 minutes (the seed's baseline in the same table); SST-2 dev >= 83%; and, with only
2,000 SST-2 training sentences, starting from the IMDB encoder beats starting from scratch.

IMDB: 20% of each class held out (seed 42) after dropping the file's 418 duplicate reviews, so
no validation review is also a training review; by default whole films are held out (the
`movie` column, `--group-column auto`), `imdb_random` splits reviews at random as before. SST-2: scored on `dev.tsv` (872 sentences).
Train time is the wall time of `Trainer.fit`, with a validation pass every epoch.

    python benchmarks/sentiment_accuracy.py                       # all rows, in order
    python benchmarks/sentiment_accuracy.py --rows imdb sst2      # some rows
    python benchmarks/sentiment_accuracy.py --rows sst2_2k sst2_2k_from_imdb --seeds 1 2 3
    python benchmarks/sentiment_accuracy.py --table-only RUN...   # re-print from finished runs

Rows whose name contains `from_imdb` start from the `imdb` row's run (run it first).
`imdb_prune80` is the imdb row's model and settings followed by a pruning stage to 80%
(`configs/imdb_prune.toml`; its export sizes are in benchmarks/results/pruning.md).
"""

import os

import runs

CONFIGS = os.path.join("projects", "sentiment_lstm", "configs")
SMALL = ["--max-examples-per-class", "1000"]  # 2,000 SST-2 training sentences
# name -> train arguments; {data} is the data root, {imdb} the imdb row's run directory.
ROWS = {
    "imdb": ["--config", f"{CONFIGS}/imdb.toml", "--data-dir", "{data}/imdb"],
    "imdb_prune80": ["--config", f"{CONFIGS}/imdb_prune.toml", "--data-dir", "{data}/imdb"],
    "imdb_random": ["--config", f"{CONFIGS}/imdb.toml", "--data-dir", "{data}/imdb", "--group-column", "none"],
    "imdb_seed": ["--config", f"{CONFIGS}/seed.toml", "--data-dir", "{data}/imdb"],
    "sst2": ["--config", f"{CONFIGS}/sst2.toml", "--data-dir", "{data}/sst2"],
    "sst2_from_imdb": ["--config", f"{CONFIGS}/sst2.toml", "--data-dir", "{data}/sst2",
                       "--init-from", "{imdb}", "--learning-rate", "0.001"],
    "sst2_2k": ["--config", f"{CONFIGS}/sst2.toml", "--data-dir", "{data}/sst2", *SMALL,
                "--epochs", "10", "--batch-size", "32"],
    "sst2_2k_from_imdb": ["--config", f"{CONFIGS}/sst2.toml", "--data-dir", "{data}/sst2", *SMALL,
                          "--init-from", "{imdb}", "--epochs", "6", "--batch-size", "32",
                          "--learning-rate", "0.001"],
    # Plans of stages on the same 2,000 sentences, the last epoch kept (no choice on dev).
    "sst2_2k_baseline": ["--config", f"{CONFIGS}/sst2_2k_baseline.toml", "--data-dir", "{data}/sst2",
                         "--init-from", "{imdb}"],
    "sst2_2k_gradual": ["--config", f"{CONFIGS}/sst2_2k_gradual.toml", "--data-dir", "{data}/sst2",
                        "--init-from", "{imdb}"],
    "sst2_2k_switch": ["--config", f"{CONFIGS}/sst2_2k_switch.toml", "--data-dir", "{data}/sst2",
                       "--init-from", "{imdb}"],
    "sst2_2k_ramp": ["--config", f"{CONFIGS}/sst2_2k_ramp.toml", "--data-dir", "{data}/sst2",
                     "--init-from", "{imdb}"],
    "sst2_2k_from_imdb_frozen": ["--config", f"{CONFIGS}/sst2.toml", "--data-dir", "{data}/sst2", *SMALL,
                                 "--init-from", "{imdb}", "--freeze", "encoder", "--epochs", "5",
                                 "--batch-size", "32", "--fine-tune-epochs", "5",
                                 "--fine-tune-learning-rate", "0.0003"],
}


def table(run_dirs):
    lines = [
        "| run | data | model | encoder from | train texts | val texts | split | val accuracy | macro F1 | kept | "
        "train time | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run_dir in run_dirs:
        name, m, c, r = runs.read_run(run_dir)
        data = os.path.basename(r["data_dir"].rstrip("/"))
        init = "scratch"
        if c["init_from"]:
            init = os.path.basename(c["init_from"].rstrip("/"))
            init += f", --freeze {c['freeze']}" if c["freeze"] != "none" else ""
        lines.append(
            f"| {name} | {data} | {c['model']} | {init} | {r['data']['train_examples']} | "
            f"{m['num_examples']} | {r['data'].get('split', '')} | {100 * m['accuracy']:.2f}% | {m['macro_f1']:.4f} | "
            f"{c.get('checkpoint', 'best')} epoch | {m['train_seconds'] / 60:.1f} min | `{runs.train_args(r)}` |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    runs.main(__doc__, "sentiment_lstm", ROWS, table, title="sentiment_lstm accuracy")
