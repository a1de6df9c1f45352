"""The student's loss: distillation at temperature T mixed with the true labels' cross-entropy.

The targets of a distillation batch pack three things per text, so that they travel through
`tf.data`, the trainer and Keras's `fit` like ordinary labels (see `pack_targets`):

    y_true[:, 0]    the true label (an integer as a float)
    y_true[:, 1]    1 for an original training text, 0 for an augmented copy (whose true
                    label is unknown: only the teacher labels it)
    y_true[:, 2:]   the teacher's logits

and the loss of one text is

    (1 - alpha) * w * CE(label, p) + alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

with `p` the student's probabilities, `z_s = log p` its logits up to a constant, and the
distillation term computed by Keras's `keras.distillation.LogitsDistillation`. With
`alpha = 0` and only original texts it is the plain cross-entropy, exactly as `train` uses
(`tests/test_distillation.py` checks that the trained weights are equal).
"""

import keras
import numpy as np

EPSILON = 1e-7


def pack_targets(labels, original, teacher_logits):
    """The (N, 2 + C) float32 targets of texts: label, original flag, teacher logits."""
    labels = np.asarray(labels, np.float32)[:, None]
    original = np.asarray(original, np.float32)[:, None]
    return np.concatenate([labels, original, np.asarray(teacher_logits, np.float32)], axis=1)


def soft_targets(logits, temperature):
    """softmax(logits / T), row by row (NumPy): what the teacher teaches at temperature T."""
    scaled = np.asarray(logits, np.float64) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    e = np.exp(scaled)
    return e / e.sum(axis=-1, keepdims=True)


@keras.saving.register_keras_serializable(package="tf_finetune")
class DistillationLoss(keras.losses.Loss):
    """The loss of a student that outputs probabilities (see the module docstring).

    Args:
        temperature: T.
        alpha: the distillation term's weight; the true labels' is `1 - alpha`.
        label_smoothing: applied to the true labels' cross-entropy, as in `train`.
    """

    def __init__(self, temperature=2.0, alpha=0.9, label_smoothing=0.0, name="distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.label_smoothing = float(label_smoothing)
        # A `KLDivergence` instance, not the string "kl_divergence": Keras 3.15 resolves the
        # string to the plain function, which `LogitsDistillation` then applies to the scaled
        # logits instead of their softmax (its default loss is wrong that way).
        self._soft = keras.distillation.LogitsDistillation(temperature=self.temperature,
                                                           loss=keras.losses.KLDivergence())

    def call(self, y_true, y_pred):
        y_true = keras.ops.cast(y_true, "float32")
        labels = keras.ops.cast(y_true[:, 0], "int32")
        original = y_true[:, 1]
        teacher = y_true[:, 2:]
        if self.label_smoothing > 0:
            one_hot = keras.ops.one_hot(labels, keras.ops.shape(y_pred)[-1])
            hard = keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)
        else:
            hard = keras.losses.sparse_categorical_crossentropy(labels, y_pred)
        loss = (1.0 - self.alpha) * original * hard
        if self.alpha > 0:
            student = keras.ops.log(keras.ops.clip(y_pred, EPSILON, 1.0))
            # The batch mean of the T^2-scaled KL term, added to every text's loss: the
            # batch's mean loss is then (1 - alpha) * mean(hard) + alpha * KL.
            loss = loss + self.alpha * self._soft.compute_loss(teacher, student)
        return loss

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "alpha": self.alpha,
                "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="tf_finetune")
def label_accuracy(y_true, y_pred):
    """Accuracy against the true labels (`y_true[:, 0]`) of packed targets."""
    labels = keras.ops.cast(y_true[:, :1], "int32")
    return keras.metrics.sparse_categorical_accuracy(labels, y_pred)


@keras.saving.register_keras_serializable(package="tf_finetune")
def teacher_agreement(y_true, y_pred):
    """How often the student's top class is the teacher's."""
    teacher = keras.ops.argmax(y_true[:, 2:], axis=-1)
    return keras.ops.cast(keras.ops.equal(teacher, keras.ops.argmax(y_pred, axis=-1)), "float32")


def compile_args(temperature, alpha, label_smoothing=0.0):
    """`Trainer.fit` arguments: the loss, accuracy on the true labels as `accuracy` (so
    `val_accuracy` is monitored as in `train`), and agreement with the teacher."""
    return {
        "loss": DistillationLoss(temperature, alpha, label_smoothing),
        "metrics": [keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy"),
                    keras.metrics.MeanMetricWrapper(teacher_agreement, name="teacher_agreement")],
    }
