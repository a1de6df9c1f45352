"""Training throughput of `tf_finetune.trainer.Trainer.fit` vs a plain `model.fit`, same model, same data.

What the trainer adds to Keras's `fit`: its callbacks (best-model checkpoint, BackupAndRestore
after every epoch, TensorBoard, CSV history, learning-rate and epoch-time logging, NaN stop),
the phase bookkeeping and the final reload of the best model. Goal: at least 0.95x the plain
`fit` throughput.

Both sides train plant_cnn's MobileNetV2-0.35 head on the same cached PlantVillage batches
with the same optimizer, schedule and loss (`Trainer.compile` compiles both), one untimed
warm-up epoch each (graph tracing), then `--epochs` timed epochs with validation. Each side's time
is its whole `fit` call minus the warm-up epoch, so the trainer's end-of-fit work (the final
checkpoint reload) counts against it. The two alternate `--repeats` times; the table keeps
each side's fastest repeat.

    python benchmarks/trainer_overhead.py [--data-dir DIR] [--images-per-class 160] [--epochs 3]
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


def parse_args():
    data = os.environ.get("TF_FINETUNE_DATA") or os.path.join(REPO, "..", "shared", "data")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.path.join(data, "plantvillage"))
    parser.add_argument("--images-per-class", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run (after 1 warm-up)")
    parser.add_argument("--repeats", type=int, default=2)
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


def main():
    args = parse_args()
    from projects.plant_cnn.config import PlantConfig
    from projects.plant_cnn.model import build_model
    from tf_finetune import image_folder
    from tf_finetune.trainer import Trainer
    from tf_finetune.trainer import read_history

    config = PlantConfig(max_examples_per_class=args.images_per_class, epochs=1 + args.epochs,
                         fine_tune_epochs=0, batch_size=32, image_size=128)
    folder = image_folder.scan(args.data_dir, max_per_class=config.max_examples_per_class, seed=config.seed)
    train, val = image_folder.split(folder, config.validation_split, config.seed)
    size = (config.resolved_image_size(),) * 2
    train_ds = image_folder.make_dataset(train.files, train.labels, image_size=size, batch_size=32,
                                         shuffle=True, seed=config.seed)
    val_ds = image_folder.make_dataset(val.files, val.labels, image_size=size, batch_size=32)
    for _ in train_ds.concatenate(val_ds):  # fill the decode caches before anything is timed
        pass
    steps = int(train_ds.cardinality())
    work = tempfile.mkdtemp(prefix="trainer_overhead_")

    # Each side: the whole fit minus its first (warm-up, tracing) epoch.
    def plain():
        trainer = Trainer(config, os.path.join(work, "plain"))  # compiles the same way; fit is Keras's
        model = trainer.build_model(lambda: build_model(config, folder.class_names))
        trainer.compile(model, learning_rate=config.learning_rate, epochs=config.epochs, steps_per_epoch=steps)
        times = EpochTimes()
        start = time.perf_counter()
        model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=[times.callback], verbose=0)
        return time.perf_counter() - start - times.seconds[0]

    def ours():
        run_dir = os.path.join(work, "trainer")
        shutil.rmtree(run_dir, ignore_errors=True)
        trainer = Trainer(config, run_dir)
        model = trainer.build_model(lambda: build_model(config, folder.class_names))
        start = time.perf_counter()
        trainer.fit(model, train_ds, val_ds)  # its callbacks, checkpoints, and the final reload
        return time.perf_counter() - start - read_history(run_dir)["epoch_seconds"][0]

    best = {"plain": float("inf"), "trainer": float("inf")}
    for repeat in range(args.repeats):
        best["plain"] = min(best["plain"], plain())
        best["trainer"] = min(best["trainer"], ours())
        print(f"repeat {repeat + 1}: plain {best['plain']:.1f} s, trainer {best['trainer']:.1f} s (best so far)",
              file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)

    examples = args.epochs * len(train)
    plain_rate, ours_rate = examples / best["plain"], examples / best["trainer"]
    print()
    print("| fit | timed epochs | train images/epoch | seconds | train images/s | vs plain fit |")
    print("|---|---|---|---|---|---|")
    print(f"| plain `model.fit` | {args.epochs} | {len(train)} | {best['plain']:.1f} | {plain_rate:.1f} | 1.00x |")
    print(f"| `Trainer.fit` (callbacks, checkpoints, backup, reload) | {args.epochs} | {len(train)} | "
          f"{best['trainer']:.1f} | {ours_rate:.1f} | {ours_rate / plain_rate:.2f}x |")
    print()
    print(f"Machine: {os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.2f}; "
          f"MobileNetV2-0.35 head, 128 px, batch 32, {len(val)} validation images per epoch.")


if __name__ == "__main__":
    main()
