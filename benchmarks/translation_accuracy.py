"""Character BLEU-4 and training wall time of the translation models, as a markdown table.

Each row is one `python -m projects.translation train ...` run on the Tatoeba pairs
(`cmn_eng/cmn.txt`); the table reads the run's metrics.json. BLEU is corpus BLEU-4 on the
held-out test sentences (5% of the English sentences, with all their translations as
references), Chinese split into characters. Goal (2 CPU cores): BLEU-4 >= 25 with at most
30 minutes of training; `seed` (the LSTM encoder-decoder) in the same table.

The test sentences are never trained on and not used to choose the checkpoint (validation,
another 5%, is). Train time is the wall time of `Trainer.fit` with a validation pass every
epoch; decoding the test set comes after it.

    python benchmarks/translation_accuracy.py                      # all rows, in order
    python benchmarks/translation_accuracy.py --rows transformer   # the default model
    python benchmarks/translation_accuracy.py --table-only RUN...  # re-print from finished runs

Rows:
  transformer   the defaults: 2+2 layer Transformer, beam search with 4 beams
  seed          --model seed: the seed's LSTM encoder-decoder, same data and epochs
"""

import runs
from tf_finetune.run_dir import read_history

DATA = ["--data-dir", "{data}/cmn_eng"]
ROWS = {
    "transformer": [*DATA],
    "seed": [*DATA, "--model", "seed"],
}


def table(run_dirs):
    lines = [
        "| run | model | train pairs | test sentences | BLEU-4 beam | BLEU-4 greedy | best val accuracy "
        "| train time | command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run_dir in run_dirs:
        name, m, c, r = runs.read_run(run_dir)
        lines.append(
            f"| {name} | {c['model']} | {r['data']['train_pairs']} | {m['num_examples']} | "
            f"{m['bleu_beam']:.2f} ({m['beam_size']} beams) | {m['bleu_greedy']:.2f} | "
            f"{100 * best_val_accuracy(run_dir):.2f}% | {m['train_seconds'] / 60:.1f} min | "
            f"`{runs.train_args(r)}` |"
        )
    return "\n".join(lines)


def best_val_accuracy(run_dir):
    """The best epoch's validation next-character accuracy, from history.csv."""
    return max(read_history(run_dir)["val_accuracy"])


if __name__ == "__main__":
    runs.main(__doc__, "translation", ROWS, table, title="translation BLEU (Tatoeba English -> Chinese)")
