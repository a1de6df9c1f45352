"""What LoRA saves on bert_classifier: trainable parameters, backup size, and training speed.

Two models of the same preset, built as the project builds them (embeddings frozen, max
length 64 here): the full fine-tune (every transformer layer and the pooler train) and
`trainable = "lora:8"` (rank-8 adapters on each layer's query and value projections, plus the
classifier), applied by `tf_finetune.models.trainable` as a stage does it. For each:

- trainable parameters, and the bytes of the backup the trainer writes after every epoch
  (`training.backup.Backup`, which holds only what trains, plus the optimizer's state);
- training speed: the same batches of SST-2 training sentences (length-bucketed, batch 32),
  AdamW, `--rounds` alternating rounds of `--steps` steps each after an untimed warm-up; each
  side keeps its fastest round ("SST-2 epoch" extrapolates that to 67,349 sentences).

Both sides recompute the frozen embeddings every step here; the project caches them, which
takes the same small share off both.

    python benchmarks/lora_cost.py [--preset DIR] [--data-dir DIR] [--steps 24] [--rounds 3] [--no-write]
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import runs  # noqa: E402

SST2_TRAIN = 67349


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runs.add_bert_sst2_args(parser)
    parser.add_argument("--steps", type=int, default=24, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rank", type=int, default=8)
    runs.add_no_write(parser)
    return parser.parse_args()


def main():
    measured = runs.stamp()
    args = parse_args()
    import keras

    from projects.bert_classifier.config import BertConfig
    from projects.bert_classifier.project import PROJECT
    from tf_finetune.data import text_dataset
    from tf_finetune.data import text_table
    from tf_finetune.models import trainable
    from tf_finetune.project import Data
    from tf_finetune.training import backup
    from tf_finetune.training import optimizers

    config = BertConfig(preset=args.preset, max_length=64)
    train = text_table.read_table(os.path.join(args.data_dir, "train.tsv"), class_names=("negative", "positive"))
    train = text_table.limit_per_class(train, args.steps * 32, seed=0)
    classes = Data(train=None, val=None, class_names=train.class_names, source="", examples=[])
    batches = list(text_dataset.make_text_dataset(
        train.texts, train.labels, batch_size=32, max_length=config.max_length, shuffle=True, seed=0,
        boundaries=text_dataset.fine_bucket_boundaries(config.max_length)).take(args.steps))

    sides = {}
    for name, spec in (("full fine-tune", "as_built"), (f"LoRA rank {args.rank}", f"lora:{args.rank}")):
        keras.utils.set_random_seed(0)
        model = PROJECT.build_model(config, classes)
        parts = PROJECT.parts(model)
        trainable.apply(model, spec, parts, trainable.capture(model), lora_targets=("query", "value"))
        optimizer = optimizers.make_optimizer("adamw", 5e-5, 0.01)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        for x, y in batches[:2]:
            model.train_on_batch(x, y)  # warm-up: tracing, optimizer slots
        with tempfile.TemporaryDirectory() as tmp:
            saver = backup.Backup(tmp, model)
            saver.track(model.trainable_variables)
            saver.write_latest(optimizer, {"epoch": 0})
            size = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp))
        count = sum(int(w.numpy().size) for w in model.trainable_weights)
        total = sum(int(w.numpy().size) for w in model.weights)
        sides[name] = {"model": model, "trainable": count, "total": total, "backup": size, "seconds": []}

    for _ in range(args.rounds):
        for side in sides.values():
            start = time.perf_counter()
            for x, y in batches:
                side["model"].train_on_batch(x, y)
            side["seconds"].append((time.perf_counter() - start) / len(batches))

    full = next(iter(sides.values()))
    lines = ["| model | trainable params | share | backup | vs full | step (batch 32) | SST-2 epoch | speed vs full |",
             "|---|---|---|---|---|---|---|---|"]
    for name, side in sides.items():
        step = min(side["seconds"])
        lines.append(
            f"| {name} | {side['trainable']:,} | {100 * side['trainable'] / side['total']:.2f}% | "
            f"{side['backup'] / 1e6:.1f} MB | {100 * side['backup'] / full['backup']:.1f}% | {1000 * step:.0f} ms | "
            f"{SST2_TRAIN / 32 * step / 60:.1f} min | {min(full['seconds']) / step:.2f}x |")
    table = "\n".join(lines)
    print()
    print(table)
    print()
    print(f"{len(batches)} batches of SST-2 training sentences per round, {args.rounds} alternating rounds, "
          f"preset {os.path.basename(args.preset.rstrip('/'))}.")
    print(runs.machine(), f"Load average: {os.getloadavg()[0]:.2f}.")
    runs.save_speed(args, "lora_cost", "LoRA on bert_classifier: parameters, backup, speed", __doc__, table, measured)


if __name__ == "__main__":
    main()
