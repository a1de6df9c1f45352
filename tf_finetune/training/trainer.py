"""The one place that compiles and fits, for every project: a plan of stages, epoch by epoch.

A run is a plan of stages (`tf_finetune.training.stages`): each says how many epochs, what
trains, the optimizer, rate and schedule, and the batch size. By default the plan is the
keras-io transfer-learning recipe, in two stages:

1. **head** (`epochs`): train the model as its factory built it; for transfer learning the
   factory has frozen the pretrained backbone, so only the new head learns.
2. **fine-tune** (`fine_tune_epochs`): unfreeze the top `unfreeze_top` layers of the backbone
   (BatchNormalization stays frozen), with a fresh optimizer at `fine_tune_learning_rate`. A
   model with no pretrained backbone, or one whose backbone has nothing frozen to unfreeze,
   trains in the first stage only, and the log says so.

The loop is plain: for each stage, make it trainable, compile, then for each epoch call
Keras's `fit` for that one epoch on that epoch's batches, write the history row and the
backup, and decide whether the stage goes on (a stalled metric can end it or lower its rate).
Each epoch's shuffle and augmentation are a function of `(seed, stage, epoch)` (`epoch_seed`)
when the training data is given as a function of a seed and a batch size (what every
project's data gives), so a resumed run feeds each epoch exactly what an uninterrupted run
would, whatever Keras does with iterators.

A model with a `tf_finetune.models.FrozenPrefix` trains on that frozen bottom's outputs,
computed once (`cache_frozen_prefix`, on by default): each epoch runs only the layers above.

A stage with `prune_sparsity` prunes (`tf_finetune.models.pruning`): its masks are remade on
schedule by a callback and applied after every optimizer step in the graph; they stay for the
rest of the run, are part of every backup, and only epochs at the plan's final sparsity may be
kept as the best. The saved model is an ordinary one with zeros.

Re-running with the same run directory resumes after the last finished epoch, in any stage,
from the newest intact backup (`tf_finetune.training.backup`). Everything is written to the
run directory (`tf_finetune.run_dir`).
"""

import contextlib
import hashlib
import logging
import math
import os
import shutil
import sys
import tempfile
import time

import keras
import numpy as np

from tf_finetune import files
from tf_finetune.errors import UserError
from tf_finetune.models import freezing
from tf_finetune.models import frozen_prefix
from tf_finetune.models import lora
from tf_finetune.models import pruning
from tf_finetune.models import trainable
from tf_finetune.models.trainable import Parts
from tf_finetune.run_dir import RunDir
from tf_finetune.training import backup as backup_lib
from tf_finetune.training import distributed
from tf_finetune.training import optimizers
from tf_finetune.training import schedules
from tf_finetune.training import stage_teacher
from tf_finetune.training import stages as stages_lib
from tf_finetune.training.epoch_log import EpochLog
from tf_finetune.training.plateau import Plateau
from tf_finetune.training.plateau import ScaledSchedule
from tf_finetune.training.prefix_cache import PrefixCache

logger = logging.getLogger(__name__)


def epoch_seed(seed, stage, epoch):
    """The seed of one epoch's shuffle and augmentation: a function of the run's seed, the
    stage's index and the epoch's index within it (31 bits)."""
    digest = hashlib.sha256(f"{seed}/{stage}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


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
        # (frozen bottom, head, cache key, store) when the whole plan trained the head on
        # cached backbone outputs: scoring the result can use them too (`cached_predictions`).
        self._head_only = None

    # --- Model ---

    def build_model(self, model_fn):
        """Calls `model_fn()` inside the strategy scope (and mixed-precision policy)."""
        with self.strategy.scope(), _dtype_policy(self.config.mixed_precision):
            return model_fn()

    def make_optimizer(self, model, stage, steps_per_epoch, learning_rate=None):
        """A fresh optimizer for `stage` whose schedule spans its epochs (peak `learning_rate`,
        default the stage's); with `reduce_on_plateau`, the schedule is a `ScaledSchedule`."""
        c = self.config
        total_steps = max(1, int(stage.epochs * steps_per_epoch))
        warmup = min(int(stage.warmup_epochs * steps_per_epoch), total_steps - 1)
        kwargs = {}
        if stage.lr_schedule == "exponential":
            kwargs.update(decay_rate=c.decay_rate, decay_steps=max(1, int(c.decay_epochs * steps_per_epoch)))
        elif stage.lr_schedule == "cosine_restarts" and c.restart_epochs > 0:
            kwargs.update(first_decay_steps=max(1, int(c.restart_epochs * steps_per_epoch)))
        if stage.lr_schedule.startswith("cosine"):
            kwargs.update(alpha=c.min_lr_fraction)
        rate = schedules.build_schedule(stage.lr_schedule, learning_rate or stage.learning_rate, total_steps,
                                        warmup_steps=warmup, **kwargs)
        if stage.reduce_on_plateau:
            rate = ScaledSchedule(rate)
        rate_scales = optimizers.stage_rate_scales(model, stage.layer_decay, stage.loraplus_lr_ratio)
        if rate_scales:
            what = []
            if stage.layer_decay != 1.0:
                what.append(f"Layer-wise learning-rate decay {stage.layer_decay:g}")
            if stage.loraplus_lr_ratio != 1.0:
                what.append(f"LoRA+ ratio {stage.loraplus_lr_ratio:g} on the adapters' B matrices")
            logger.info("%s (multipliers of the schedule's rate):\n  %s", " and ".join(what),
                        "\n  ".join(optimizers.format_scales(rate_scales)))
        with self.strategy.scope():
            return optimizers.make_optimizer(stage.optimizer, rate, stage.weight_decay, rate_scales=rate_scales,
                                             ema_momentum=c.ema_momentum)

    def compile(self, model, optimizer, *, loss=None, metrics=None, weighted_metrics=None):
        """Compiles `model` with `optimizer` and the loss (classification by default)."""
        c = self.config
        with self.strategy.scope():
            if loss is None:
                loss = self.default_loss()
            model.compile(optimizer=optimizer, loss=loss,
                          metrics=metrics if metrics is not None else ["accuracy"],
                          weighted_metrics=weighted_metrics, jit_compile=c.jit_compile)

    def default_loss(self, one_hot=None):
        """Classification: cross-entropy on probabilities, label-smoothed when configured.

        `one_hot`: whether the labels are one-hot (or mixed) rows rather than class ids
        (default: when label smoothing is on, which needs them).
        """
        if one_hot is None:
            one_hot = self.config.label_smoothing > 0
        if one_hot:
            return keras.losses.CategoricalCrossentropy(label_smoothing=self.config.label_smoothing)
        return keras.losses.SparseCategoricalCrossentropy()

    # --- Plan ---

    def plan(self, model, parts=None, *, train_examples=None):
        """The stages this run trains, checked against the model and (optionally) the data.

        With the flat flags' plan, the fine-tune stage is dropped, with one log line, when
        there is nothing to unfreeze: no backbone, or one whose top `unfreeze_top` layers are
        all trainable already.
        """
        c = self.config
        parts = parts or Parts()
        plan = stages_lib.expand(c, num_blocks=len(parts.blocks))
        if not c.stages and c.fine_tune_epochs > 0:
            reason = None
            if parts.backbone is None:
                reason = "this model has no pretrained backbone to unfreeze"
            elif not freezing.frozen_params_in_top(parts.backbone, c.unfreeze_top):
                top = "all" if c.unfreeze_top == -1 else f"the top {c.unfreeze_top}"
                reason = f"{top} layers of {parts.backbone.name!r} are trainable already"
            if reason is not None:
                plan = [stage for stage in plan if stage.name != "fine-tune"]
                if not plan:
                    raise UserError(f"--epochs 0 leaves only the fine-tune phase, but {reason}: pass --epochs N "
                                    "to train the model as built.")
                logger.info("Training in one phase of %d epochs: %s, so --fine-tune-epochs %d is not used.",
                            c.epochs, reason, c.fine_tune_epochs)
        blocks = [layer for block in parts.blocks for layer in block]
        stages_lib.check_against_model(
            plan, num_blocks=len(parts.blocks), layer_names=parts.layer_names(),
            lora_targets=set(lora.adaptable_names(blocks)), has_backbone=parts.backbone is not None,
            # A batch larger than the data only matters when a plan sets it (a ramp, say); the
            # flat --batch-size has always meant one partial batch then.
            train_examples=train_examples if c.stages else None)
        trainable.check_pissa(plan, parts)
        pruning.check_plan(plan, model)
        return plan

    # --- Fit ---

    def fit(self, model, train, val, *, parts=None, backbone=None, plan=None, loss=None, metrics=None,
            weighted_metrics=None, head_cache=None, data_key=None, mixing=None, class_weight=None):
        """Runs the plan; returns `model` with its best weights.

        Args:
            model: a model built with `build_model`.
            train: training batches of `(inputs, labels)` (or with sample weights): a function
                `train(seed, batch_size) -> tf.data.Dataset` whose order and augmentation the
                seed fixes (exact resume, and stages with their own batch size), or a
                dataset (used as it is every epoch).
            val: a batched validation dataset.
            parts: the model's pretrained `Parts` (backbone and blocks), which stages
                unfreeze; `backbone` alone is short for `Parts(backbone, its layers)`.
            plan: the stages, as `plan(model, parts)` returned them (default: made here).
            loss, metrics, weighted_metrics: replace the classification defaults (sparse
                cross-entropy and accuracy); `weighted_metrics` count the datasets' sample
                weights.
            head_cache: a dict that keeps the frozen backbone's outputs between runs (a
                search's trials), or None. Given it, a first stage that trains only the head
                trains it on the backbone's (pooled) outputs, computed once per data and
                weights (`data_key` names the data) instead of every epoch. Only for data
                without augmentation: the caller vouches for that by passing the dict.
            mixing: a `tf_finetune.augmentation.BatchMixing` (MixUp, CutMix) applied to each
                training batch after its labels are made one-hot, seeded by the epoch's seed
                and the batch's index; the loss is then categorical cross-entropy. Needs `train`
                as a function of (seed, batch_size) and the classification loss.
            class_weight: `{class index: weight}` scaling each training example's loss (Keras's
                `fit(class_weight=...)`; `tf_finetune.training.class_weights`), or None.
        """
        c = self.config
        mixing = mixing if mixing is not None and mixing.active else None
        if mixing is not None:
            check_mixing(mixing, train, loss)
        if class_weight is not None and loss is not None:
            raise ValueError("class_weight applies to the classification loss, not to a loss of the caller's.")
        if parts is None:
            parts = Parts(backbone, trainable.layer_blocks(backbone))
        plan = plan or self.plan(model, parts)
        stage_teacher.check_plan(plan, dict(loss=loss, metrics=metrics, weighted_metrics=weighted_metrics))
        state = self.run.read_state()
        done_before = {s["index"]: s for s in state.get("stages", [])}
        if all(i in done_before for i in range(len(plan))) and self.run.is_finished():
            logger.info("Training already finished in %s; loading its best model.", self.run.path)
            return keras.models.load_model(self.run.best_checkpoint)
        os.makedirs(os.path.dirname(self.out.best_checkpoint), exist_ok=True)
        backups = backup_lib.Backup(self.run.backup_dir, model, write=self.is_chief)
        latest = backups.read_latest()
        best = backups.read_best()  # (meta, arrays) or None
        as_built = trainable.capture(model)
        fit_model, cached = model, None
        if c.cache_frozen_prefix and frozen_prefix.find_frozen_prefix(model) is not None and mixing is None:
            fit_model, cached = self._cache_prefix(model, train, val)
            train, val = cached
        raw_train, raw_val = train, val  # integer labels, for outputs cached across runs
        one_hot = one_hot_labels(c, loss, mixing)
        num_classes = model.output_shape[-1] if one_hot else None
        if num_classes:
            train, val = classification_train(train, num_classes, mixing), _one_hot(val, num_classes)
        if mixing is not None:
            logger.info("Training batches mixed: %s.", mixing.describe())
        distributed.prepare_for_multi_worker(fit_model, self.strategy)  # keras#20585
        log = EpochLog(self.out.history_file, self.out.logs_dir)
        pruned = pruning.PlanPruning(plan, model)
        mode = "min" if c.monitor.endswith("loss") else "max"
        best_value = None if best is None else best[0]["value"]
        finished, epoch, optimizer, restored = [], 0, None, True

        for index, stage in enumerate(plan):
            described = trainable.apply_stage(model, stage, parts, as_built)
            backups.track(model.trainable_variables + trainable.batchnorm_statistics(model))
            if best is not None:  # what this stage begins to train is put back with the best epoch too
                best = backups.cover(best)
            with self.strategy.scope():
                pruned.add_stage(index)  # its masks, for a stage done before too (the backup has them)
            if index in done_before:  # done in an earlier process: its structure is replayed
                record = done_before[index]
                finished.append(record)
                epoch, optimizer, restored = record["first_epoch"] + record["epochs_run"], None, False
                continue
            if _budget_reached(c, epoch):  # the budget ended the plan before this stage
                finished.append({"index": index, "name": stage.name, "first_epoch": epoch, "epochs_run": 0,
                                 "ended": "budget"})
                self.out.write_state({"stages": finished})
                continue
            # A first stage that trains only the head may train it on cached backbone outputs.
            head = None
            if index == 0 and head_cache is not None and cached is None and mixing is None:
                head = self._cache_head(model, parts, plan, raw_train, raw_val, head_cache, data_key)
                if head and num_classes:
                    head = (head[0], _one_hot(head[1], num_classes), _one_hot(head[2], num_classes))
            learner, stage_train, stage_val = head or (fit_model, train, val)  # what the stage's optimizer updates
            stage_model, stage_metrics = learner, metrics
            stage_loss = loss if loss is not None else self.default_loss(one_hot=one_hot)
            if stage.distill_alpha > 0:  # the stage learns from the model as it begins
                with self.strategy.scope():
                    stage_model, stage_loss, stage_metrics = stage_teacher.taught(
                        learner, stage, stage_loss, one_hot=one_hot)
            if not restored and latest is None:
                raise UserError(f"{self.run.backup_dir} is missing, so the {stage.name!r} stage cannot resume: "
                                "pass a new --output-dir to train again.")
            first_epoch, resumed = epoch, latest is not None and latest[0]["stage"] == index
            peak = stage.learning_rate
            if stage.derive_learning_rate:
                peak = finished[-1]["derived_learning_rate"]
            if not (stage.continue_optimizer and optimizer is not None):
                # A stage that continues an optimizer this process does not have (it resumes)
                # makes it as the stage that started it did, then loads its state below.
                origin = index
                while plan[origin].continue_optimizer and origin > 0:
                    origin -= 1
                steps = _cardinality(_epoch_batches(stage_train, epoch_seed(c.seed, origin, 0),
                                                    plan[origin].batch_size, c.batch_size))
                optimizer = self.make_optimizer(learner, plan[origin], steps,
                                                learning_rate=peak if origin == index else None)
            self.compile(stage_model, optimizer, loss=stage_loss, metrics=stage_metrics,
                         weighted_metrics=weighted_metrics)
            stalls = Plateau(mode)
            lowering = Plateau(mode)
            done, ending, prune_initial = 0, None, None
            if latest is not None:
                meta, model_arrays, optimizer_arrays = latest
                source = os.path.join(self.run.backup_dir, backup_lib.LATEST)
                with self.strategy.scope():
                    backups.restore(meta, model_arrays, source=source)
                    pruned.load(meta["masks"])
                    if resumed or (stage.continue_optimizer and meta["stage"] == index - 1):
                        optimizer.build(stage_model.trainable_variables)
                        backup_lib.assign(optimizer.variables, optimizer_arrays, source=source)
                if resumed:
                    done, ending = meta["epochs_done"] - first_epoch, meta.get("ended")
                    if ending and ending.startswith("epoch budget") and not _budget_reached(c, meta["epochs_done"]):
                        ending = None  # continued with a larger budget (Hyperband's next round)
                    stalls, lowering = Plateau(mode, **meta["stalls"]), Plateau(mode, **meta["lowering"])
                    _set_scale(optimizer, meta.get("lr_scale", 1.0))
                    prune_initial = meta.get("prune_initial")
                    logger.info("Resuming stage %d (%s) after epoch %d of %d (backup in %s).",
                                index + 1, stage.name, done, stage.epochs, self.run.backup_dir)
                latest = None
            if stage.distill_alpha > 0:
                stage_teacher.set_teacher(stage_model, stage, index, self.run.backup_dir, resumed=resumed,
                                          write=self.is_chief)
            if pruned.active:
                pruned.start_stage(index, _cardinality(_epoch_batches(stage_train, epoch_seed(c.seed, index, 0),
                                                                      stage.batch_size, c.batch_size)),
                                   initial=prune_initial)
            logger.info("Stage %d/%d (%s): %d epochs training %s; %s; %s, batch %d.", index + 1, len(plan),
                        stage.name, stage.epochs, described, freezing.format_trainable_summary(model),
                        _describe_rate(stage, peak), stage.batch_size)

            with _ema_kept_until_the_stage_ends(optimizer):
                for e in range(done, stage.epochs if not ending else done):
                    g = first_epoch + e
                    batches = _epoch_batches(stage_train, epoch_seed(c.seed, index, e), stage.batch_size,
                                             c.batch_size)
                    logs = self._fit_epoch(stage_model, batches, stage_val, g, len(plan), index, stage, e,
                                           callbacks=pruned.callbacks(e), class_weight=class_weight)
                    logs.update(pruned.logs())
                    log.write(g, stage.name, logs)
                    value = logs.get(c.monitor)
                    if value is None and g == 0:
                        logger.warning("%s is not in the epoch logs (%s); the last epoch counts as the best.",
                                       c.monitor, ", ".join(sorted(logs)))
                    # A pruning run keeps an epoch as the best only once at its final sparsity.
                    eligible = pruned.counts_as_best(index, e + 1)
                    if pruned.active and eligible and not pruned.counts_as_best(index, e):
                        logger.info("Pruning reached the plan's final sparsity: from this epoch on, epochs can be "
                                    "kept as the best model.")
                    if eligible and (value is None or best_value is None or Plateau(mode, best_value).update(value)):
                        best_value = None if value is None else float(value)
                        arrays = backups.snapshot(backup_lib.moving_averages(optimizer))
                        best = ({"value": best_value, "epoch": g + 1, "indices": backups.indices}, arrays)
                        backups.write_best(arrays, best[0])
                    stalls.update(value)
                    if stage.reduce_on_plateau and not lowering.update(value) \
                            and lowering.stalled >= stage.plateau_patience:
                        scale = _set_scale(optimizer, _scale(optimizer) * stage.reduce_on_plateau)
                        lowering.stalled = 0
                        logger.info("%s has not improved for %d epochs: learning rate x%g (now x%g of the schedule).",
                                    c.monitor, stage.plateau_patience, stage.reduce_on_plateau, scale)
                    if stage.advance_patience and stalls.stalled >= stage.advance_patience:
                        ending = f"{c.monitor} stalled for {stalls.stalled} epochs"
                    elif c.early_stopping_patience and stalls.stalled >= c.early_stopping_patience:
                        ending = f"early stop: {c.monitor} stalled for {stalls.stalled} epochs"
                    elif c.epoch_budget and g + 1 >= c.epoch_budget and e < stage.epochs - 1:
                        ending = f"epoch budget: {c.epoch_budget} epochs in all"
                    if ending or e == stage.epochs - 1:
                        _finalize_ema(optimizer, stage_model)
                    backups.write_latest(optimizer, {
                        "stage": index, "epochs_done": g + 1, "best": best_value, "stalls": stalls.state(),
                        "lowering": lowering.state(), "lr_scale": _scale(optimizer), "ended": ending,
                        **pruned.state()})
                    if ending:
                        logger.info("Stage %d (%s) ends after %d of %d epochs: %s.", index + 1, stage.name,
                                    e + 1, stage.epochs, ending)
                        break
                else:
                    e = done - 1 if ending else stage.epochs - 1
            record = {"index": index, "name": stage.name, "first_epoch": first_epoch, "epochs_run": e + 1,
                      "ended": ("budget" if ending.startswith("epoch budget") else "stalled") if ending else "epochs"}
            following = plan[index + 1] if index + 1 < len(plan) else None
            if following is not None and following.derive_learning_rate:
                record["derived_learning_rate"] = optimizers.sgd_rate_from_adam(optimizer, stage.learning_rate)
                logger.info("SGD rate for stage %d (%s), derived from the Adam state: %.3g.", index + 2,
                            following.name, record["derived_learning_rate"])
            finished.append(record)
            self.out.write_state({"stages": finished})
            epoch, restored = first_epoch + e + 1, True
        log.close()

        if best is not None and c.checkpoint == "best":
            meta, arrays = best
            backups.restore(meta, arrays, source=os.path.join(self.run.backup_dir, backup_lib.BEST))
        pruned.finish()  # an ordinary model, its pruned weights zeros
        with files.atomic_path(self.out.best_checkpoint) as temp_path:
            model.save(temp_path)
        # A run the budget cut short keeps its backup: a larger budget continues it exactly.
        if self.is_chief and not any(record["ended"] == "budget" for record in finished):
            shutil.rmtree(self.run.backup_dir, ignore_errors=True)
        return model

    def _fit_epoch(self, model, batches, val, epoch, stages, index, stage, epoch_in_stage, callbacks=(),
                   class_weight=None):
        """Fits `model` for run epoch `epoch` on `batches` (with `callbacks` first); returns the
        epoch's logs."""
        verbose = 1 if sys.stdout.isatty() else 2
        print(f"Epoch {epoch + 1} (stage {index + 1}/{stages} {stage.name}: {epoch_in_stage + 1}/{stage.epochs})",
              flush=True)
        ema = [keras.callbacks.SwapEMAWeights()] if getattr(model.optimizer, "use_ema", False) else []
        # Validation runs on the weights' moving average, so the logged val_* are the
        # average's; the best snapshot reads the average itself. The given callbacks (a
        # pruning run's, which masks the average) run before the swap.
        callbacks = [*callbacks, *ema, _EpochProgress(), keras.callbacks.TerminateOnNaN()]
        rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        start = time.time()
        history = model.fit(batches, validation_data=val, initial_epoch=epoch, epochs=epoch + 1,
                            callbacks=callbacks, shuffle=False, verbose=verbose, class_weight=class_weight)
        logs = {key: float(values[-1]) for key, values in history.history.items() if values}
        logs.update(learning_rate=rate, epoch_seconds=round(time.time() - start, 1))
        loss = logs.get("loss", math.nan)
        if not math.isfinite(loss) or len(history.epoch) == 0:
            raise UserError(
                f"Training loss became {loss} in stage {index + 1} ({stage.name}): lower its learning rate "
                "(--learning-rate, --fine-tune-learning-rate, or the stage's) and check the data for bad labels."
            )
        return logs

    def _cache_prefix(self, model, train, val):
        """(top model, (cached training batches, cached validation batches))."""
        c = self.config
        with self.strategy.scope():  # the top is trained under the strategy too
            prefix, top = frozen_prefix.split_model(model)
        start = time.time()
        train_cache = PrefixCache.compute(prefix, _epoch_batches(train, c.seed, c.batch_size, c.batch_size),
                                          description="training data")
        val_cache = PrefixCache.compute(prefix, val, description="validation data")
        logger.info("Cached the frozen prefix's outputs (%d + %d examples, %.0f MB) in %.0f s; "
                    "training the layers above it.", len(train_cache), len(val_cache),
                    (train_cache.nbytes + val_cache.nbytes) / 2**20, time.time() - start)
        return top, (train_cache.batches, val_cache.dataset(c.batch_size))


    def _cache_head(self, model, parts, plan, train, val, store, data_key):
        """`(head model, cached training batches, cached validation batches)` for a first
        stage that trains only what is above the frozen backbone (called once the stage's
        trainable layers are set), or None when the model or plan does not allow it. Outputs
        are kept in `store` by data (`data_key`) and backbone weights."""
        c = self.config
        if (not c.cache_frozen_prefix or parts.backbone is None or (len(plan) > 1 and plan[1].continue_optimizer)
                or self.strategy.num_replicas_in_sync != 1 or plan[0].prune_sparsity > 0):
            return None
        split = frozen_prefix.split_after(model, parts.backbone)
        if split is None or split[0].trainable_weights:  # the backbone trains in this stage
            return None
        prefix, top = split
        digest = hashlib.sha256()
        for weight in prefix.weights:
            digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
        key = (data_key, str(prefix.input_shape), digest.hexdigest())
        if key not in store:
            start = time.time()
            store[key] = (PrefixCache.compute(prefix, _epoch_batches(train, c.seed, c.batch_size, c.batch_size),
                                              description="training data"),
                          PrefixCache.compute(prefix, val, description="validation data"))
            logger.info("Cached the frozen backbone's outputs for head-only first stages (%d + %d examples) in "
                        "%.0f s.", len(store[key][0]), len(store[key][1]), time.time() - start)
        else:
            logger.info("Reusing the frozen backbone's cached outputs for the head-only first stage.")
        train_cache, val_cache = store[key]
        self._head_only = (prefix, top, key, store) if len(plan) == 1 else None
        return top, train_cache.batches, val_cache.dataset(c.batch_size)

    def cached_predictions(self, splits):
        """`{name: (labels, probabilities)}` of the fitted model on each dataset of `splits`
        ("val" and others, e.g. "test"; None values skipped), run on the frozen backbone's cached
        outputs; None unless the whole plan was one head-only stage trained on them (a search's
        cheap head trials), where they equal the full model's outputs (the backbone never
        changed, and at inference nothing random runs below the cut). The validation outputs
        are the ones cached for training; the others are computed once and kept in the same
        store, for the search's next trials."""
        if self._head_only is None:
            return None
        from tf_finetune.reporting import evaluation

        prefix, top, key, store = self._head_only
        predictions = {}
        for name, dataset in splits.items():
            if dataset is None:
                continue
            if name == "val":
                cache = store[key][1]
            else:
                if (key, name) not in store:
                    store[key, name] = PrefixCache.compute(prefix, dataset, description=f"{name} data")
                cache = store[key, name]
            labels, probabilities, _ = evaluation.predict_dataset(top, cache.dataset(self.config.batch_size))
            predictions[name] = (labels, probabilities)
        return predictions


class _EpochProgress(keras.callbacks.ProgbarLogger):
    """Keras's progress bar without its "Epoch k/k" line (the trainer prints the run's own)."""

    def set_params(self, params):
        super().set_params(params)
        self.epochs = 1


def _budget_reached(config, epochs_done):
    return bool(config.epoch_budget) and epochs_done >= config.epoch_budget


def _epoch_batches(train, seed, batch_size, default_batch_size):
    """One epoch's training batches: `train(seed, batch_size)`, or the dataset `train`."""
    if callable(train):
        return train(seed, batch_size)
    if batch_size != default_batch_size:
        raise UserError(f"A stage's batch_size {batch_size} needs training data given as a function of "
                        "(seed, batch_size); this data is one dataset batched by "
                        f"{default_batch_size}.")
    return train


def _cardinality(ds):
    import tensorflow as tf

    n = int(ds.cardinality())
    if n == tf.data.INFINITE_CARDINALITY or n < 0:
        raise ValueError(
            "The training dataset needs a known, finite number of batches. Received: "
            f"cardinality={n}"
        )
    return max(n, 1)


def _one_hot(data, num_classes):
    import tensorflow as tf

    def encode(ds):
        return ds.map(lambda x, y: (x, tf.one_hot(y, num_classes)))

    if callable(data):
        return lambda seed, batch_size: encode(data(seed, batch_size))
    return encode(data)


def one_hot_labels(config, loss=None, mixing=None):
    """Whether classification trains on one-hot label rows: label smoothing and mixing need
    them, with the default loss (a loss of its own takes the labels as they come)."""
    return loss is None and (config.label_smoothing > 0 or mixing is not None)


def classification_train(train, num_classes, mixing=None):
    """`train` (a dataset, or a function of (seed, batch_size)) with one-hot labels, each batch
    then mixed by `mixing` (seeded by the epoch's seed; `train` must be a function)."""
    train = _one_hot(train, num_classes)
    if mixing is None:
        return train
    return lambda seed, batch_size: mixing.apply(train(seed, batch_size), seed)


def check_mixing(mixing, train, loss):
    if loss is not None:
        raise UserError(f"{mixing!r} mixes one-hot labels for the classification loss, but this run has its own "
                        "loss: turn mixup and cutmix off.")
    if not callable(train):
        raise UserError(f"{mixing!r} needs training data given as a function of (seed, batch_size), so that each "
                        "epoch's mix is a function of (seed, stage, epoch); this data is one dataset.")


def _scale(optimizer):
    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, ScaledSchedule):
        return float(keras.ops.convert_to_numpy(schedule.scale))
    return 1.0


def _set_scale(optimizer, value):
    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, ScaledSchedule):
        schedule.scale.assign(value)
    return value


def _describe_rate(stage, peak):
    held = "continued" if stage.continue_optimizer else f"peak {peak:.3g}"
    return (f"{stage.optimizer}, {held}, {stage.lr_schedule} schedule"
            + (f" with {stage.warmup_epochs:g} warmup epochs" if stage.warmup_epochs else "")
            + (f", x{stage.reduce_on_plateau} on a plateau" if stage.reduce_on_plateau else ""))


@contextlib.contextmanager
def _ema_kept_until_the_stage_ends(optimizer):
    """Keras's `fit` ends by putting the weights' moving average into the model
    (`finalize_variable_values`); with one `fit` per epoch that would happen every epoch.
    Inside this block it does not; `_finalize_ema` does it once, at the stage's end."""
    if not getattr(optimizer, "use_ema", False):
        yield
        return
    optimizer.finalize_variable_values = lambda variables: None
    try:
        yield
    finally:
        del optimizer.finalize_variable_values


def _finalize_ema(optimizer, model):
    if getattr(optimizer, "use_ema", False):
        type(optimizer).finalize_variable_values(optimizer, model.trainable_weights)


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
