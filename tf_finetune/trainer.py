"""The one place that compiles and fits, for every project.

Fine-tuning runs in up to two phases (the keras-io transfer-learning recipe):

1. **head**: train the model as its factory built it; for transfer learning the factory has
   frozen the pretrained backbone, so only the new head learns, at `learning_rate`.
2. **fine-tune** (`fine_tune_epochs > 0`): unfreeze the top `unfreeze_top` layers of the layer
   named `backbone` (BatchNormalization stays frozen, i.e. in inference mode), recompile with
   a fresh optimizer at the lower `fine_tune_learning_rate`, and continue the epoch count.

A model whose frozen bottom is wrapped in `tf_finetune.prefix_cache.FrozenPrefix` trains
phase 1 on that bottom's cached outputs (`cache_frozen_prefix`, on by default): the bottom
runs once over the data, and each epoch runs only the layers above it.

Everything lands in the run directory:

```
RUN/checkpoints/best.keras     the best model (monitor) across both phases, written at the end
RUN/backup/                    the state after the last epoch and the best weights so far
                               (`tf_finetune.backup`): re-running the command resumes; removed
                               once best.keras is written
RUN/history.csv                one row per epoch, both phases (CSVLogger, appended)
RUN/logs/                      TensorBoard
RUN/state.json                 which phases are done
```
"""

import contextlib
import csv
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time

import keras

from tf_finetune import backup
from tf_finetune import distributed
from tf_finetune import files
from tf_finetune import freezing
from tf_finetune import metrics
from tf_finetune import optimizers
from tf_finetune import prefix_cache
from tf_finetune import schedules
from tf_finetune.errors import UserError

logger = logging.getLogger(__name__)

BEST_CHECKPOINT = os.path.join("checkpoints", "best.keras")
BACKUP_DIR = "backup"


class Trainer:
    """Builds, compiles and fits a model for one run directory.

    Args:
        config: a `tf_finetune.config.TrainConfig` (or a project subclass).
        run_dir: the run directory; created if needed.
        strategy: a `tf.distribute.Strategy`; by default chosen from `config.strategy`.

    Multi-worker training: every worker runs the same `fit`; only the chief writes to
    `run_dir`. The others read it (to resume, it must be on a shared file system) and write
    to a temporary folder of their own, `out_dir`, which the caller removes.
    """

    def __init__(self, config, run_dir, strategy=None):
        import keras
        import tensorflow as tf

        from tf_finetune.strategy import choose_strategy

        self.config = config
        self.run_dir = os.path.abspath(run_dir)
        # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs anything.
        self.strategy = strategy or choose_strategy(config.strategy)
        self.is_chief = distributed.is_chief(self.strategy)
        self.out_dir = self.run_dir if self.is_chief else tempfile.mkdtemp(prefix="tf_finetune_worker_")
        keras.utils.set_random_seed(config.seed)
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()

    # --- Model ---

    def build_model(self, model_fn):
        """Calls `model_fn()` inside the strategy scope (and mixed-precision policy)."""
        with self.strategy.scope(), _dtype_policy(self.config.mixed_precision):
            return model_fn()

    def compile(self, model, *, learning_rate, epochs, steps_per_epoch, loss=None, metrics=None,
                weighted_metrics=None):
        """Compiles `model` with a fresh optimizer whose schedule spans `epochs`."""
        import keras

        c = self.config
        total_steps = max(1, int(epochs * steps_per_epoch))
        warmup = min(int(c.warmup_epochs * steps_per_epoch), total_steps - 1)
        kwargs = {}
        if c.lr_schedule == "exponential":
            kwargs.update(decay_rate=c.decay_rate, decay_steps=max(1, int(c.decay_epochs * steps_per_epoch)))
        elif c.lr_schedule == "cosine_restarts" and c.restart_epochs > 0:
            kwargs.update(first_decay_steps=max(1, int(c.restart_epochs * steps_per_epoch)))
        if c.lr_schedule.startswith("cosine"):
            kwargs.update(alpha=c.min_lr_fraction)
        lr = schedules.build_schedule(
            c.lr_schedule, learning_rate, total_steps, warmup_steps=warmup, **kwargs
        )
        rate_scales = None
        if c.layer_decay != 1.0:
            rate_scales = optimizers.layer_decay_scales(model, c.layer_decay)
            logger.info("Layer-wise learning-rate decay %g (multipliers of the schedule's rate):\n  %s",
                        c.layer_decay, "\n  ".join(optimizers.format_scales(rate_scales)))
        with self.strategy.scope():
            optimizer = optimizers.make_optimizer(c.optimizer, lr, c.weight_decay, rate_scales=rate_scales,
                                                  ema_momentum=c.ema_momentum)
            if loss is None:
                if c.label_smoothing > 0:
                    loss = keras.losses.CategoricalCrossentropy(label_smoothing=c.label_smoothing)
                else:
                    loss = keras.losses.SparseCategoricalCrossentropy()
            model.compile(
                optimizer=optimizer,
                loss=loss,
                metrics=metrics if metrics is not None else ["accuracy"],
                weighted_metrics=weighted_metrics,
                jit_compile=c.jit_compile,
            )

    # --- Fit ---

    def fit(self, model, train_ds, val_ds, *, loss=None, metrics=None, weighted_metrics=None):
        """Runs phase 1 (and phase 2 when configured); returns `model` with its best weights.

        Re-running with the same run directory resumes: finished phases are skipped and an
        interrupted one continues after its last finished epoch, with the optimizer's state
        and the best model so far (`tf_finetune.backup`). `loss`, `metrics` and
        `weighted_metrics` (which count the datasets' sample weights) replace the
        classification defaults: sparse cross-entropy and accuracy.
        """
        c = self.config
        finished = os.path.join(self.run_dir, BEST_CHECKPOINT)
        state = self._read_state()
        if state.get("phase1_done") and (c.fine_tune_epochs == 0 or state.get("phase2_done")) \
                and os.path.exists(finished):
            logger.info("Training already finished in %s; loading its best model.", self.run_dir)
            return keras.models.load_model(finished)
        best_path = os.path.join(self.out_dir, BEST_CHECKPOINT)
        os.makedirs(os.path.dirname(best_path), exist_ok=True)
        backup_dir = os.path.join(self.run_dir, BACKUP_DIR)
        best = backup.Snapshot.read(os.path.join(backup_dir, backup.BEST))
        latest = backup.read_state(os.path.join(backup_dir, backup.LATEST))
        # A resumed run replays the data of the epochs it skipped: `passes` counts the
        # passes over the training data in this process (see `_one_pass_per_epoch`).
        train_ds, passes = _one_pass_per_epoch(train_ds), 0
        cached = c.cache_frozen_prefix and prefix_cache.find_frozen_prefix(model) is not None
        phase1_epochs = state.get("phase1_epochs", c.epochs)

        if not state.get("phase1_done"):
            # With a cached frozen prefix, phase 1 fits the model's top on the cached
            # outputs; the backups are still of the whole model.
            fit_model, fit_train, fit_val = model, train_ds, val_ds
            if cached:
                fit_model, fit_train, fit_val = self._cache_prefix(model, train_ds, val_ds)
                fit_train, passes = _one_pass_per_epoch(fit_train), passes + 1
            if c.label_smoothing > 0 and loss is None:
                fit_train, fit_val = (_one_hot(ds, model.output_shape[-1]) for ds in (fit_train, fit_val))
            self.compile(
                fit_model, learning_rate=c.learning_rate, epochs=c.epochs,
                steps_per_epoch=_cardinality(fit_train), loss=loss, metrics=metrics,
                weighted_metrics=weighted_metrics,
            )
            done = self._resume(fit_model, model, latest, phase=1)
            _start_passes(fit_train, done if cached else done - passes)
            logger.info("Phase 1: %s", freezing.format_trainable_summary(model))
            best, ran, used = self._fit_phase(fit_model, fit_train, fit_val, phase=1, initial_epoch=done,
                                              epochs=c.epochs, best=best, save_model=model)
            phase1_epochs = done + ran  # fewer than c.epochs after an early stop
            passes = passes if cached else done + used
            self._write_state(phase1_done=True, phase1_epochs=phase1_epochs)
            latest = None  # The model holds phase 1's end state now.

        if c.fine_tune_epochs > 0 and not state.get("phase2_done"):
            if c.label_smoothing > 0 and loss is None:
                train_ds, val_ds = (_one_hot(ds, model.output_shape[-1]) for ds in (train_ds, val_ds))
            backbone = _find_backbone(model)
            n = freezing.unfreeze_top(backbone, c.unfreeze_top)
            logger.info("Phase 2 (fine-tune): unfroze the top %d backbone layers; %s",
                        n, freezing.format_trainable_summary(model))
            self.compile(
                model, learning_rate=c.fine_tune_learning_rate, epochs=c.fine_tune_epochs,
                steps_per_epoch=_cardinality(train_ds), loss=loss, metrics=metrics,
                weighted_metrics=weighted_metrics,
            )
            if state.get("phase1_done") and latest is None:
                raise UserError(f"{backup_dir} is missing, so the fine-tuning phase cannot resume: "
                                "pass a new --output-dir to train again.")
            done = self._resume(model, model, latest, phase=2) if latest is not None else 0
            # Before phase 2 an uninterrupted run has made 1 pass (the prefix cache) or, with
            # phase 1 on this data, one per epoch and the one before its fit (`_fit_phase`).
            _start_passes(train_ds, (1 if cached else 1 + phase1_epochs) + done - passes)
            best, _, _ = self._fit_phase(model, train_ds, val_ds, phase=2, initial_epoch=c.epochs + done,
                                      epochs=c.epochs + c.fine_tune_epochs, best=best)
            self._write_state(phase1_done=True, phase1_epochs=phase1_epochs, phase2_done=True)

        if best is not None:
            backup.assign(model.weights, best.weights, source=os.path.join(backup_dir, backup.BEST))
        with files.atomic_path(best_path) as temp_path:
            model.save(temp_path)
        if self.is_chief:
            shutil.rmtree(backup_dir, ignore_errors=True)
        return model

    def _resume(self, fit_model, save_model, latest, *, phase):
        """Loads the backup of an interrupted run into the models; returns the phase's epochs done.

        A backup of this phase restores the weights and the optimizer (its step drives the
        learning-rate schedule); the last backup of phase 1 is where phase 2 starts.
        """
        if latest is None:
            return 0
        meta, weights, optimizer_variables = latest
        source = os.path.join(self.run_dir, BACKUP_DIR, backup.LATEST)
        with self.strategy.scope():
            backup.assign(save_model.variables, weights, source=source)
            if meta["phase"] != phase:
                return 0
            fit_model.optimizer.build(fit_model.trainable_variables)
            backup.assign(fit_model.optimizer.variables, optimizer_variables, source=source)
        done = meta["epochs_done"] - (self.config.epochs if phase == 2 else 0)
        logger.info("Resuming phase %d after epoch %d of %d (backup in %s).", phase, done,
                    self.config.epochs if phase == 1 else self.config.fine_tune_epochs, source)
        return done

    def _cache_prefix(self, model, train_ds, val_ds):
        """(top model, cached training batches, cached validation batches)."""
        c = self.config
        with self.strategy.scope():  # the top is trained under the strategy too
            prefix, top = prefix_cache.split_model(model)
        start = time.time()
        train = prefix_cache.PrefixCache.compute(prefix, train_ds, description="training data")
        val = prefix_cache.PrefixCache.compute(prefix, val_ds, description="validation data")
        logger.info("Cached the frozen prefix's outputs (%d + %d examples, %.0f MB) in %.0f s; "
                    "training the layers above it.", len(train), len(val),
                    (train.nbytes + val.nbytes) / 2**20, time.time() - start)
        return (top, train.dataset(c.batch_size, shuffle=True, seed=c.seed),
                val.dataset(c.batch_size))

    def _fit_phase(self, model, train_ds, val_ds, *, phase, initial_epoch, epochs, best,
                   save_model=None):
        """Fits `model`, backing up `save_model` (default `model`, which it contains).

        Returns the best `backup.Snapshot` so far (across phases), the number of epochs run,
        and the number of passes it started over `train_ds`.
        """
        c = self.config
        epoch_backup = backup.EpochBackup(
            os.path.join(self.out_dir, BACKUP_DIR),
            phase=phase,
            monitor=c.monitor,
            # Stated, not inferred: the trainer compiles a loss and accuracy, so only a loss
            # is minimized.
            mode="min" if c.monitor.endswith("loss") else "max",
            best=best,
            model_to_save=save_model,
            write=self.is_chief,  # the other workers resume from the chief's backup
        )
        callbacks = [
            LogLearningRate(),  # first, so the loggers below see these two
            LogEpochTime(),
            EpochTensorBoard(os.path.join(self.out_dir, "logs"), write_graph=False),
            keras.callbacks.CSVLogger(os.path.join(self.out_dir, "history.csv"), append=True),
            # After the loggers: an epoch in the backup is always in the history too (a kill
            # in between re-runs that epoch, and `read_history` keeps its last row).
            epoch_backup,
            keras.callbacks.TerminateOnNaN(),
        ]
        if getattr(model.optimizer, "use_ema", False):
            # Validation (evaluate's on_test_begin/end) runs on the weights' moving average, so
            # the logged val_* are the average's; the backup reads the average itself for the
            # best snapshot.
            callbacks.insert(0, keras.callbacks.SwapEMAWeights())
        if c.early_stopping_patience > 0:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor=c.monitor, patience=c.early_stopping_patience))
        if initial_epoch >= epochs:
            return epoch_backup.best, 0, 0  # Killed after the phase's last backup: nothing left to run.
        distributed.prepare_for_multi_worker(model, self.strategy)  # keras#20585
        # Under a tf.distribute strategy Keras's fit reads the first batch of a pass (to build
        # the model) before its epochs; without one, the trainer starts that pass itself, so
        # epoch k reads the same pass under every strategy, and one worker or many see the
        # same batches.
        if not _fit_reads_a_pass_first(model):
            _start_passes(train_ds, 1)
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            initial_epoch=initial_epoch,
            epochs=epochs,
            callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline shuffles
            verbose=1 if sys.stdout.isatty() else 2,
        )
        losses = history.history.get("loss", [])
        if any(not math.isfinite(v) for v in losses):
            raise UserError(
                f"Training loss became {losses[-1]} in phase {phase}: lower --learning-rate "
                "(or --fine-tune-learning-rate) and check the data for bad labels."
            )
        return epoch_backup.best, len(history.epoch), 1 + len(history.epoch)

    # --- State ---

    def _read_state(self):
        path = os.path.join(self.run_dir, "state.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        return {}

    def _write_state(self, **state):
        metrics.write_json(state, os.path.join(self.out_dir, "state.json"))


class LogLearningRate(keras.callbacks.Callback):
    """Adds the learning rate each epoch started with to that epoch's logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self._rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self._rate


class LogEpochTime(keras.callbacks.Callback):
    """Adds the epoch's wall time in seconds (training and validation) to its logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = round(time.time() - self._start, 1)


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """`keras.callbacks.TensorBoard` logging once per epoch, without Keras's per-batch work.

    With `update_freq="epoch"` (the default) Keras 3.15 still builds a summary for every
    log entry after every training batch, which no writer records: 4.5 ms per step on
    2 CPU cores (cProfile of plant_cnn), 4% of a 3-second epoch.
    """

    on_train_batch_end = keras.callbacks.Callback.on_train_batch_end

    def __init__(self, log_dir, **kwargs):
        if kwargs.get("update_freq", "epoch") != "epoch" or kwargs.get("profile_batch", 0):
            raise ValueError(
                "EpochTensorBoard logs epochs only; use keras.callbacks.TensorBoard for batch "
                f"summaries or profiling. Received: {kwargs}"
            )
        super().__init__(log_dir, **kwargs)


def load_run(run_dir, project_name, config_class, *, flag="--run-dir"):
    """(config, run record, best Keras model) of a finished training run of `project_name`.

    `flag` names the argument the folder came from, for the one-line errors.
    """
    from tf_finetune import config as config_lib

    run_dir = os.path.abspath(os.path.expanduser(run_dir))
    run_json = os.path.join(run_dir, "run.json")
    if not os.path.isfile(run_json):
        raise UserError(f"{flag} {run_dir} is not a training run (no run.json): pass a folder written by train.")
    with open(run_json, encoding="utf-8") as f:
        record = json.load(f)
    if record.get("project") != project_name:
        raise UserError(
            f"{flag} {run_dir} holds a {record.get('project')!r} run, not {project_name!r}: "
            f"pass a {project_name} run directory (python -m projects.{record.get('project')} reads that one)."
        )
    best = os.path.join(run_dir, BEST_CHECKPOINT)
    if not os.path.isfile(best):
        raise UserError(f"{flag} {run_dir} has no {BEST_CHECKPOINT} yet: train it (again) first.")
    config = config_lib.load_run_config(config_class, os.path.join(run_dir, "config.json"))
    return config, record, keras.models.load_model(best)


def read_history(run_dir):
    """Reads `RUN/history.csv` into a Keras-style history dict (last row wins per epoch).

    After a resume an epoch can appear twice; the later row is the one that counted.
    """
    path = os.path.join(run_dir, "history.csv")
    if not os.path.exists(path):
        return {}
    rows = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("epoch", "") == "epoch":  # A repeated header after a resume.
                continue
            rows[int(row["epoch"])] = row
    history = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            if key == "epoch" or value in (None, ""):
                continue
            history.setdefault(key, []).append(float(value))
    return history


def phase_boundaries(config):
    """Epoch indices where a new phase starts, for plots."""
    return [config.epochs] if config.fine_tune_epochs > 0 else []


def _find_backbone(model):
    try:
        return model.get_layer("backbone")
    except ValueError:
        raise UserError(
            "--fine-tune-epochs needs a model with a pretrained layer named 'backbone'; this "
            "model has none. Set --fine-tune-epochs 0."
        ) from None


def _cardinality(ds):
    import tensorflow as tf

    n = int(ds.cardinality())
    if n == tf.data.INFINITE_CARDINALITY or n < 0:
        raise ValueError(
            "The training dataset needs a known, finite number of batches. Received: "
            f"cardinality={n}"
        )
    return max(n, 1)


def _one_pass_per_epoch(ds):
    """`ds` behind a one-element `flat_map`: its randomness moves on only with passes that read it.

    A shuffle (and the per-batch augmentation seeds of `image_folder.batch_images`) draws
    new randomness each time an iterator over the dataset starts. Keras 3.15's `fit` starts
    two iterators per epoch and reads one (measured), so which randomness epoch k gets would
    depend on Keras internals. Behind this wrapper an iterator only reaches `ds` once it is
    read, so epoch k of any run reads the same pass (k + 1: see `_fit_reads_a_pass_first`),
    and `_start_passes` can replay the passes of the epochs a resumed run skips.
    """
    import tensorflow as tf

    _cardinality(ds)  # known and finite

    @tf.autograph.experimental.do_not_convert
    def the_dataset(_):
        return ds

    return tf.data.Dataset.from_tensors(0).flat_map(the_dataset).apply(
        tf.data.experimental.assert_cardinality(ds.cardinality()))


def _fit_reads_a_pass_first(model):
    """Whether Keras's `fit` starts a pass over the data to build `model` before its epochs.

    Keras 3.15 `TensorFlowTrainer._maybe_symbolic_build` does, when the model was built
    under a `tf.distribute` strategy (its `_distribute_strategy`; None for the default one).
    """
    return getattr(model, "_distribute_strategy", None) is not None


def _start_passes(ds, n):
    """Starts `n` passes over `ds` and drops them, as the skipped epochs would have."""
    for _ in range(max(0, n)):
        next(iter(ds), None)


def _one_hot(ds, num_classes):
    import tensorflow as tf

    return ds.map(lambda x, y: (x, tf.one_hot(y, num_classes)))


@contextlib.contextmanager
def _dtype_policy(mixed_precision):
    """Sets the mixed-precision policy while the model is built, then restores it."""
    import keras

    if not mixed_precision:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
