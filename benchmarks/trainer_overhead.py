"""Training throughput of `tf_finetune.training.trainer.Trainer.fit` vs a plain `model.fit`, same model, same data.

What the trainer adds to Keras's `fit`: one `fit` call per epoch on that epoch's seeded
batches, the epoch's backup (what trains, the optimizer, the best weights; checksummed), the
history row and TensorBoard scalars, the stage bookkeeping, restoring the best weights and
writing `best.keras` at the end. Goal: at least 0.95x the plain `fit` throughput.

Both sides train plant_cnn's head phase (MobileNetV2-0.35 frozen, new head) on the project's
own data pipeline (decoded images cached, augmentation in `tf.data`), with the same optimizer,
schedule and loss (`Trainer.make_optimizer` and `Trainer.compile` for both). Each side runs one untimed warm-up epoch
(graph tracing, filling the image cache), then `--epochs` timed epochs with validation. Its
time is its whole `fit` call minus the warm-up epoch, so the trainer's fixed work (writing
`best.keras`) counts against it. The sides alternate `--repeats` times; each keeps its fastest.
The table also shows each side's time outside its epochs (the total minus the epochs' own
times, as each side's epoch-timing callback saw them), which is where the trainer's extra
work lands: on a noisy machine the epochs swing more than that work.

Two settings, one row pair each:
- `project`: `projects/plant_cnn/configs/plantvillage.toml` (all images, 224 px, flips,
  rotation, zoom): the epochs a user of the project runs.
- `short`: 160 images per class at 128 px: about 3-second epochs, where the fixed costs weigh
  the most.

    python benchmarks/trainer_overhead.py [--settings project short] [--epochs 3] [--repeats 2]
        [--no-write]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import runs  # noqa: E402

SETTINGS = {
    "project": {"image_size": 224},
    "short": {"image_size": 128, "max_examples_per_class": 160},
}


def parse_args():
    data = os.environ.get("TF_FINETUNE_DATA") or os.path.join(REPO, "..", "shared", "data")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.path.join(data, "plantvillage"))
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=["project", "short"])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run (after 1 warm-up)")
    parser.add_argument("--repeats", type=int, default=2)
    runs.add_no_write(parser)
    return parser.parse_args()


class EpochTimes:
    """A callback list entry recording each epoch's wall time."""

    def __init__(self):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(cb, epoch, logs=None):
                cb.start = time.perf_counter()

            def on_epoch_end(cb, epoch, logs=None):
                self.seconds.append(time.perf_counter() - cb.start)

        self.seconds = []
        self.callback = Callback()


def measure(setting, args, work):
    """{"plain": seconds, "trainer": seconds, ...} of one setting (fastest repeat of each)."""
    from projects.plant_cnn.config import PlantConfig
    from projects.plant_cnn.data import load_data
    from projects.plant_cnn.model import build_model
    from tf_finetune import config as config_lib
    from tf_finetune.training.trainer import Trainer
    from tf_finetune.run_dir import read_history

    overrides = dict(SETTINGS[setting], epochs=1 + args.epochs, fine_tune_epochs=0)
    config = config_lib.build_config(
        PlantConfig, file=os.path.join(REPO, "projects", "plant_cnn", "configs", "plantvillage.toml"),
        overrides=overrides)
    data = load_data(config, args.data_dir)
    steps = int(data.train.cardinality())

    def plain():
        trainer = Trainer(config, os.path.join(work, "plain"))  # compiles the same way; fit is Keras's
        model = trainer.build_model(lambda: build_model(config, data))
        (stage,) = trainer.plan(model)
        trainer.compile(model, trainer.make_optimizer(model, stage, steps))
        times = EpochTimes()
        start = time.perf_counter()
        model.fit(data.train, validation_data=data.val, epochs=config.epochs, callbacks=[times.callback],
                  verbose=0)
        return time.perf_counter() - start - times.seconds[0], times.seconds[1:]

    def ours():
        run_dir = os.path.join(work, "trainer")
        shutil.rmtree(run_dir, ignore_errors=True)
        trainer = Trainer(config, run_dir)
        model = trainer.build_model(lambda: build_model(config, data))
        start = time.perf_counter()
        trainer.fit(model, data.train_batches, data.val)  # a fit per epoch, its logs, backups, best.keras
        epochs = read_history(run_dir)["epoch_seconds"]
        return time.perf_counter() - start - epochs[0], epochs[1:]

    best = {"plain": (float("inf"), []), "trainer": (float("inf"), [])}
    for repeat in range(args.repeats):
        for side, run in (("plain", plain), ("trainer", ours)):
            seconds, epochs = run()
            if seconds < best[side][0]:
                best[side] = (seconds, epochs)
        print(f"{setting}, repeat {repeat + 1}: plain {best['plain'][0]:.1f} s, "
              f"trainer {best['trainer'][0]:.1f} s (best so far)", file=sys.stderr, flush=True)
    return best, data.info["train_examples"], data.info["validation_examples"], config


def main():
    measured = runs.stamp()  # Before measuring: the code the rows run.
    args = parse_args()
    work = tempfile.mkdtemp(prefix="trainer_overhead_")
    rows = []
    try:
        for setting in args.settings:
            rows.append((setting, *measure(setting, args, work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = ["| setting | fit | timed epochs | train / val images | seconds per epoch | outside the epochs (s) | "
             "total (s) | train images/s | vs plain fit |",
             "|---|---|---|---|---|---|---|---|---|"]
    extra = {}
    for setting, best, train, val, config in rows:
        plain_rate = args.epochs * train / best["plain"][0]
        outside = {side: best[side][0] - sum(best[side][1]) for side in best}
        for side, label in (("plain", "plain `model.fit`"), ("trainer", "`Trainer.fit`")):
            seconds, epochs = best[side]
            rate = args.epochs * train / seconds
            per_epoch = ", ".join(f"{s:.1f}" for s in epochs)
            lines.append(f"| {setting} ({config.resolved_image_size()} px) | {label} | {args.epochs} | "
                         f"{train} / {val} | {per_epoch} | {outside[side]:.1f} | {seconds:.1f} | {rate:.1f} | "
                         f"{rate / plain_rate:.2f}x |")
        extra[setting] = (outside["trainer"] - outside["plain"], best["plain"][0])
    table = "\n".join(lines)
    print()
    print(table)
    print()
    # The epochs themselves run the same graph on both sides; on a noisy machine their
    # times swing more than the trainer's own work, so that work is also shown apart.
    for setting, (seconds, plain) in extra.items():
        print(f"{setting}: the trainer's work outside the epochs (backups, TensorBoard/CSV at epoch "
              f"end, best.keras) took {seconds:.1f} s more than plain fit's, over {args.epochs} epochs: "
              f"{plain / (plain + seconds):.2f}x of the plain run's throughput from that work alone.")
    print(f"Machine: {os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.2f}; "
          "MobileNetV2-0.35 frozen with a new head, batch 32.")
    runs.save_speed(args, "trainer_overhead", "Trainer overhead vs a plain `model.fit`", __doc__, table, measured)


if __name__ == "__main__":
    main()
