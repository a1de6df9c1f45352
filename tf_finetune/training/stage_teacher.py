"""A stage that learns from the model as the stage found it: self-distillation (Hinton et al.
2015), e.g. while pruning.

With `distill_alpha > 0` a stage keeps a frozen copy of the model as it was when the stage
began, the teacher, and trains the model on

    (1 - alpha) * CE(labels, p) + alpha * T^2 * KL(softmax(log q / T) || softmax(log p / T))

where `p` is the model's output and `q` the teacher's on the same (augmented) batch, at
temperature `T = distill_temperature`: the labels' loss, as any stage, plus the teacher's whole
distribution over the classes. A pruning stage is the use: the dense model teaches the model
being pruned what it knew, on every batch, where the labels say only which class is right.

The model and teacher run side by side in one Keras model (`WithTeacher`) whose output is the
two outputs concatenated on the last axis; the loss (`TeacherLoss`) and the accuracy metric
(`student_accuracy`) split it, so `fit`, validation, callbacks and the trainer's backups see the
model's own variables (the teacher's are not trainable). Validation reports the model's
accuracy; its loss is this loss. The teacher's weights are written to the run's backup folder
when the stage starts, so a run killed mid-stage resumes with the same teacher.
"""

import logging
import os

import keras

from tf_finetune.errors import UserError
from tf_finetune.training import backup as backup_lib

logger = logging.getLogger(__name__)

EPSILON = 1e-7


OWN_LOSS_ARGS = ("loss", "metrics", "weighted_metrics")


def check_plan(plan, fit_args):
    """A plan with a taught stage (`distill_alpha > 0`) for a command whose `Trainer.fit` (or
    `compile`) arguments `fit_args` bring a loss or metrics of their own is a one-line
    `UserError`: the teacher's term is mixed into the classification loss only."""
    if not any(fit_args.get(name) is not None for name in OWN_LOSS_ARGS):
        return
    for index, stage in enumerate(plan):
        if stage.distill_alpha > 0:
            raise UserError(f"stage {index + 1} ({stage.name!r}), field distill_alpha: this command trains with its "
                            "own loss, which a stage's teacher cannot be mixed into: leave distill_alpha out. "
                            f"Received: distill_alpha={stage.distill_alpha!r}")


def teacher_file(backup_dir, index):
    return os.path.join(backup_dir, f"teacher_stage{index + 1}.npz")


class WithTeacher(keras.Model):
    """`concat([model(x), teacher(x)], axis=-1)`, the teacher frozen and in inference mode."""

    def __init__(self, model, teacher, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.teacher = teacher
        self.teacher.trainable = False

    def call(self, inputs, training=False):
        taught = keras.ops.stop_gradient(self.teacher(inputs, training=False))
        return keras.ops.concatenate([self.model(inputs, training=training), taught], axis=-1)


class TeacherLoss(keras.losses.Loss):
    """`(1 - alpha) * base + alpha * T^2 * KL` on `WithTeacher`'s output: its first half the
    model's probabilities, its second half the teacher's. `base` is the stage's loss (a Keras
    loss on probabilities: sparse or label-smoothed categorical cross-entropy)."""

    def __init__(self, base, alpha, temperature, name="teacher_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.base = base
        self.alpha = float(alpha)
        # The T^2-scaled KL term of `distill` (tf_finetune.distillation.loss), on log-probabilities.
        self._soft = keras.distillation.LogitsDistillation(temperature=float(temperature),
                                                           loss=keras.losses.KLDivergence())

    def call(self, y_true, y_pred):
        model, teacher = _halves(y_pred)
        labels = self.base.call(y_true, model)
        # The batch mean of the soft term, added to every example's: the batch's mean loss is
        # (1 - alpha) * mean(labels' loss) + alpha * mean(T^2 KL).
        return (1.0 - self.alpha) * labels + self.alpha * self._soft.compute_loss(_log(teacher), _log(model))


def student_accuracy(one_hot):
    """The model's accuracy on `WithTeacher`'s output, named "accuracy" (so the logs say
    `accuracy` and `val_accuracy` as in any stage); `one_hot` labels or integer ones."""
    accuracy = keras.metrics.categorical_accuracy if one_hot else keras.metrics.sparse_categorical_accuracy
    return keras.metrics.MeanMetricWrapper(lambda y_true, y_pred: accuracy(y_true, _halves(y_pred)[0]),
                                           name="accuracy")


def _log(probabilities):
    return keras.ops.log(keras.ops.clip(probabilities, EPSILON, 1.0))


def _halves(y_pred):
    classes = y_pred.shape[-1] // 2
    return y_pred[..., :classes], y_pred[..., classes:]


def set_teacher(taught, stage, index, backup_dir, *, resumed, write):
    """Gives `taught` (a `WithTeacher`) its teacher for stage `index`: the model's weights now
    (written to the backup folder when `write`), or, when the stage `resumed`, those written
    when it began. Call it once the model's weights are the stage's (after any backup)."""
    path = teacher_file(backup_dir, index)
    if resumed:
        try:
            arrays, _ = backup_lib.read(path)
            taught.teacher.set_weights(arrays)
        except (backup_lib.CorruptBackup, ValueError) as e:
            raise UserError(f"{path}: the teacher of stage {index + 1} ({stage.name!r}) cannot be read back "
                            f"({e}), so the stage cannot resume: pass a new --output-dir to train again.") from None
    else:
        taught.teacher.set_weights(taught.model.get_weights())
        if write:
            os.makedirs(backup_dir, exist_ok=True)
            backup_lib.write(path, taught.teacher.get_weights(), {"stage": index})
    logger.info("Stage %d (%s) learns from the model as the stage began: alpha %g, temperature %g.", index + 1,
                stage.name, stage.distill_alpha, stage.distill_temperature)


def with_teacher(model):
    """`WithTeacher(model, a copy of model)`: the copy's weights are set by `set_teacher`."""
    return WithTeacher(model, _copy(model), name=f"{model.name}_with_teacher")


def taught(model, stage, base_loss, *, one_hot):
    """What a stage with `distill_alpha` compiles: `(WithTeacher, TeacherLoss, [accuracy])`,
    the loss mixing `base_loss` (the stage's labels' loss) with the teacher's term and the
    accuracy the model's own (`one_hot` labels or integer ones). Call it in the strategy's
    scope; the teacher's weights are still to be set."""
    return (with_teacher(model), TeacherLoss(base_loss, stage.distill_alpha, stage.distill_temperature),
            [student_accuracy(one_hot=one_hot)])


def _copy(layer):
    """A copy of `layer` for the teacher: nested Functional and Sequential models copied layer by
    layer, layers without variables shared (a text vectorizer's lookup table is not a variable,
    so a rebuilt one would start empty; these layers compute a fixed function of their input),
    any other layer rebuilt from its config."""
    if not getattr(layer, "variables", None):  # also Keras ops in a functional graph
        return layer
    if _plain_model(layer):
        return keras.models.clone_model(layer, clone_function=_copy)
    if isinstance(layer, keras.Model):  # a model class of its own (keras-hub's): its own config
        return keras.models.clone_model(layer)
    return layer.__class__.from_config(layer.get_config())


def _plain_model(layer):
    """Keras's own Sequential or Functional class (not a subclass with a config of its own)."""
    kind = type(layer)
    return kind.__module__.startswith("keras.") and kind.__name__ in ("Sequential", "Functional")
