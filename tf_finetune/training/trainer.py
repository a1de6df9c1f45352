"""The one place that compiles and fits, for every project.

Fine-tuning runs in up to two phases (the keras-io transfer-learning recipe):

1. **head** (`epochs`): train the model as its factory built it; for transfer learning the
   factory has frozen the pretrained backbone, so only the new head learns, at
   `learning_rate`.
2. **fine-tune** (`fine_tune_epochs`): unfreeze the top `unfreeze_top` layers of the backbone
   (BatchNormalization stays frozen, i.e. in inference mode), recompile with a fresh
   optimizer at the lower `fine_tune_learning_rate`, and continue the epoch count. A model
   with no pretrained backbone, or whose backbone has nothing frozen to unfreeze, trains in
   the head phase only, and the log says so.

A model whose frozen bottom is wrapped in `tf_finetune.models.FrozenPrefix` trains the head
phase on that bottom's cached outputs (`cache_frozen_prefix`, on by default): the bottom runs
once over the data, and each epoch runs only the layers above it.

Re-running with the same run directory resumes: finished phases are skipped and an
interrupted one continues after its last finished epoch, with the optimizer's state and the
best model so far (`tf_finetune.training.backup`), reading the same data passes as an
uninterrupted run (`tf_finetune.training.data_passes`). Everything is written to the run
directory (`tf_finetune.run_dir`).
"""

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import sys
import tempfile
import time

import keras

from tf_finetune import files
from tf_finetune.errors import UserError
from tf_finetune.models import freezing
from tf_finetune.models import frozen_prefix
from tf_finetune.run_dir import RunDir
from tf_finetune.training import backup
from tf_finetune.training import callbacks
from tf_finetune.training import data_passes
from tf_finetune.training import distributed
from tf_finetune.training import optimizers
from tf_finetune.training import schedules
from tf_finetune.training.prefix_cache import PrefixCache

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase of training.

    Attributes:
        number: 1 for the head phase, 2 for fine-tuning (recorded in backups and state).
        name: "head" or "fine-tune".
        epochs: epochs planned.
        learning_rate: the peak of the phase's schedule.
        first_epoch: the run's epoch index this phase starts at (history and TensorBoard).
        unfreeze_top: backbone layers to unfreeze before the phase (-1: all), or None to
            train the model as built.
    """

    number: int
    name: str
    epochs: int
    learning_rate: float
    first_epoch: int
    unfreeze_top: int = None


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
        import tensorflow as tf

        from tf_finetune.training.strategy import choose_strategy

        self.config = config
        self.run = RunDir(run_dir)
        self.run_dir = self.run.path
        # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs anything.
        self.strategy = strategy or choose_strategy(config.strategy)
        self.is_chief = distributed.is_chief(self.strategy)
        self.out = self.run if self.is_chief else RunDir(tempfile.mkdtemp(prefix="tf_finetune_worker_"))
        self.out_dir = self.out.path
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

    # --- Plan ---

    def plan(self, backbone=None):
        """The phases this run trains, given the model's pretrained `backbone` (or None).

        The fine-tune phase is dropped, with one log line, when there is nothing to unfreeze:
        no backbone, or one whose top `unfreeze_top` layers are all trainable already.
        """
        c = self.config
        phases = []
        if c.epochs > 0:
            phases.append(Phase(1, "head", c.epochs, c.learning_rate, first_epoch=0))
        if c.fine_tune_epochs > 0:
            reason = None
            if backbone is None:
                reason = "this model has no pretrained backbone to unfreeze"
            elif not freezing.frozen_params_in_top(backbone, c.unfreeze_top):
                top = "all" if c.unfreeze_top == -1 else f"the top {c.unfreeze_top}"
                reason = f"{top} layers of {backbone.name!r} are trainable already"
            if reason is None:
                phases.append(Phase(2, "fine-tune", c.fine_tune_epochs, c.fine_tune_learning_rate,
                                    first_epoch=c.epochs, unfreeze_top=c.unfreeze_top))
            elif phases:
                logger.info("Training in one phase of %d epochs: %s, so --fine-tune-epochs %d is not used.",
                            c.epochs, reason, c.fine_tune_epochs)
            else:
                raise UserError(
                    f"--epochs 0 leaves only the fine-tune phase, but {reason}: pass --epochs N "
                    "to train the model as built."
                )
        return phases

    # --- Fit ---

    def fit(self, model, train_ds, val_ds, *, backbone=None, loss=None, metrics=None,
            weighted_metrics=None):
        """Runs the planned phases; returns `model` with its best weights.

        Args:
            model: a model built with `build_model`.
            train_ds, val_ds: batched datasets of `(inputs, labels)` (or with sample weights).
            backbone: the pretrained part of `model` that the fine-tune phase unfreezes, or
                None (then there is no fine-tune phase).
            loss, metrics, weighted_metrics: replace the classification defaults (sparse
                cross-entropy and accuracy); `weighted_metrics` count the datasets' sample
                weights.
        """
        c = self.config
        phases = self.plan(backbone)
        done_before = {p["number"]: p for p in self.run.read_state().get("phases", [])}
        if all(p.number in done_before for p in phases) and self.run.is_finished():
            logger.info("Training already finished in %s; loading its best model.", self.run.path)
            return keras.models.load_model(self.run.best_checkpoint)
        os.makedirs(os.path.dirname(self.out.best_checkpoint), exist_ok=True)
        best = backup.Snapshot.read(os.path.join(self.run.backup_dir, backup.BEST))
        latest = backup.read_state(os.path.join(self.run.backup_dir, backup.LATEST))
        cached = (c.cache_frozen_prefix and phases[0].unfreeze_top is None
                  and frozen_prefix.find_frozen_prefix(model) is not None)
        train_ds = data_passes.one_pass_per_epoch(train_ds)
        # Passes over `train_ds` started in this process, and started by an uninterrupted run
        # before the next phase (the prefix cache reads the data once).
        passes, expected = 0, int(cached)
        finished, restored = [], True  # Restored: the model holds the latest state.

        for phase in phases:
            phase_cached = cached and phase is phases[0]
            if phase.number in done_before:
                record = done_before[phase.number]
                finished.append(record)
                expected += 0 if phase_cached else 1 + record["epochs_run"]
                restored = False  # Its end state is in the backup, not in the model.
                continue
            if not restored and latest is None:
                raise UserError(f"{self.run.backup_dir} is missing, so the {phase.name} phase cannot "
                                "resume: pass a new --output-dir to train again.")
            if phase.unfreeze_top is not None:
                n = freezing.unfreeze_top(backbone, phase.unfreeze_top)
                logger.info("Phase %d (%s): unfroze the top %d layers of %r; %s", phase.number, phase.name,
                            n, backbone.name, freezing.format_trainable_summary(model))
            else:
                logger.info("Phase %d (%s): %s", phase.number, phase.name,
                            freezing.format_trainable_summary(model))
            # With a cached frozen prefix the phase fits the model's top on the cached
            # outputs; the backups are still of the whole model.
            fit_model, fit_train, fit_val = model, train_ds, val_ds
            if phase_cached:
                fit_model, fit_train, fit_val = self._cache_prefix(model, train_ds, val_ds)
                fit_train, passes = data_passes.one_pass_per_epoch(fit_train), passes + 1
            if c.label_smoothing > 0 and loss is None:
                fit_train, fit_val = (_one_hot(ds, model.output_shape[-1]) for ds in (fit_train, fit_val))
            self.compile(fit_model, learning_rate=phase.learning_rate, epochs=phase.epochs,
                         steps_per_epoch=data_passes.cardinality(fit_train), loss=loss, metrics=metrics,
                         weighted_metrics=weighted_metrics)
            done = self._resume(fit_model, model, latest, phase)
            if phase_cached:
                data_passes.start_passes(fit_train, done)
            else:
                data_passes.start_passes(fit_train, expected + done - passes)
                passes = expected + done
            best, ran, used = self._fit_phase(fit_model, fit_train, fit_val, phase, done, best, save_model=model)
            if not phase_cached:
                passes += used
                expected += 1 + done + ran
            finished.append({"number": phase.number, "name": phase.name, "first_epoch": phase.first_epoch,
                             "epochs_run": done + ran})  # fewer than planned after an early stop
            self.out.write_state({"phases": finished})
            latest, restored = None, True

        if best is not None:
            backup.assign(model.weights, best.weights,
                          source=os.path.join(self.run.backup_dir, backup.BEST))
        with files.atomic_path(self.out.best_checkpoint) as temp_path:
            model.save(temp_path)
        if self.is_chief:
            shutil.rmtree(self.run.backup_dir, ignore_errors=True)
        return model

    def _resume(self, fit_model, save_model, latest, phase):
        """Loads the backup of an interrupted run into the models; returns the phase's epochs done.

        A backup of this phase restores the weights and the optimizer (its step drives the
        learning-rate schedule); the last backup of an earlier phase is where this one starts.
        """
        if latest is None:
            return 0
        meta, weights, optimizer_variables = latest
        source = os.path.join(self.run.backup_dir, backup.LATEST)
        with self.strategy.scope():
            backup.assign(save_model.variables, weights, source=source)
            if meta["phase"] != phase.number:
                return 0
            fit_model.optimizer.build(fit_model.trainable_variables)
            backup.assign(fit_model.optimizer.variables, optimizer_variables, source=source)
        done = meta["epochs_done"] - phase.first_epoch
        logger.info("Resuming phase %d (%s) after epoch %d of %d (backup in %s).", phase.number,
                    phase.name, done, phase.epochs, source)
        return done

    def _cache_prefix(self, model, train_ds, val_ds):
        """(top model, cached training batches, cached validation batches)."""
        c = self.config
        with self.strategy.scope():  # the top is trained under the strategy too
            prefix, top = frozen_prefix.split_model(model)
        start = time.time()
        train = PrefixCache.compute(prefix, train_ds, description="training data")
        val = PrefixCache.compute(prefix, val_ds, description="validation data")
        logger.info("Cached the frozen prefix's outputs (%d + %d examples, %.0f MB) in %.0f s; "
                    "training the layers above it.", len(train), len(val),
                    (train.nbytes + val.nbytes) / 2**20, time.time() - start)
        return (top, train.dataset(c.batch_size, shuffle=True, seed=c.seed),
                val.dataset(c.batch_size))

    def _fit_phase(self, model, train_ds, val_ds, phase, done, best, save_model):
        """Fits `model` for the rest of `phase`, backing up `save_model` (which contains it).

        Returns the best `backup.Snapshot` so far (across phases), the number of epochs run,
        and the number of passes it started over `train_ds`.
        """
        c = self.config
        epoch_backup = backup.EpochBackup(
            self.out.backup_dir,
            phase=phase.number,
            monitor=c.monitor,
            # Stated, not inferred: the trainer compiles a loss and accuracy, so only a loss
            # is minimized.
            mode="min" if c.monitor.endswith("loss") else "max",
            best=best,
            model_to_save=save_model,
            write=self.is_chief,  # the other workers resume from the chief's backup
        )
        fit_callbacks = [
            callbacks.LogLearningRate(),  # first, so the loggers below see these two
            callbacks.LogEpochTime(),
            callbacks.EpochTensorBoard(self.out.logs_dir, write_graph=False),
            keras.callbacks.CSVLogger(self.out.history_file, append=True),
            # After the loggers: an epoch in the backup is always in the history too (a kill
            # in between re-runs that epoch, and `read_history` keeps its last row).
            epoch_backup,
            keras.callbacks.TerminateOnNaN(),
        ]
        if getattr(model.optimizer, "use_ema", False):
            # Validation (evaluate's on_test_begin/end) runs on the weights' moving average, so
            # the logged val_* are the average's; the backup reads the average itself for the
            # best snapshot.
            fit_callbacks.insert(0, keras.callbacks.SwapEMAWeights())
        if c.early_stopping_patience > 0:
            fit_callbacks.append(keras.callbacks.EarlyStopping(
                monitor=c.monitor, patience=c.early_stopping_patience))
        if done >= phase.epochs:
            return epoch_backup.best, 0, 0  # Killed after the phase's last backup: nothing left to run.
        distributed.prepare_for_multi_worker(model, self.strategy)  # keras#20585
        if not data_passes.fit_reads_a_pass_first(model):
            data_passes.start_passes(train_ds, 1)
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            initial_epoch=phase.first_epoch + done,
            epochs=phase.first_epoch + phase.epochs,
            callbacks=fit_callbacks,
            shuffle=False,  # the tf.data pipeline shuffles
            verbose=1 if sys.stdout.isatty() else 2,
        )
        losses = history.history.get("loss", [])
        if any(not math.isfinite(v) for v in losses):
            raise UserError(
                f"Training loss became {losses[-1]} in the {phase.name} phase: lower --learning-rate "
                "(or --fine-tune-learning-rate) and check the data for bad labels."
            )
        return epoch_backup.best, len(history.epoch), 1 + len(history.epoch)


def _one_hot(ds, num_classes):
    import tensorflow as tf

    return ds.map(lambda x, y: (x, tf.one_hot(y, num_classes)))


@contextlib.contextmanager
def _dtype_policy(mixed_precision):
    """Sets the mixed-precision policy while the model is built, then restores it."""
    if not mixed_precision:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
