"""Optimizers by name, and per-variable learning rates (which Keras optimizers lack): layer-wise
decay and LoRA+.

Layer-wise decay (ELECTRA, BEiT; "discriminative fine-tuning" in ULMFiT) trains the top of a
pretrained network at the peak rate and each layer below it at a smaller one, so that the
general features near the input move least:

```
rate(layer) = schedule(step) * decay ** (number of trainable layers above it)
```

Layers are the model's top-level layers that own trainable variables, in the functional
model's order; a nested model (such as a CNN backbone) counts as one layer. For the
bert_classifier model that is, from the top: classifier (x1), BERT's pooler (x decay), the last
transformer layer (x decay^2), ... the first trainable transformer layer, as in ELECTRA.

LoRA+ (Hayou et al. 2024, PEFT's `loraplus_lr_ratio`) trains each adapter's B matrix (the one
that starts at zero) at `ratio` times the rate of its A matrix: with one rate for both, B learns
too slowly in wide layers. `stage_rate_scales` combines the two (a B matrix under layer decay
gets the product).

Keras 3 optimizers apply one learning rate to every variable, so `make_optimizer` then builds
`Scaled<Optimizer>`, a subclass whose `update_step` multiplies the rate by the variable's
scale. Everything else (the schedule, the slots, weight decay's own rate, checkpoints) is the
Keras optimizer's.
"""

import keras

from tf_finetune.config import OPTIMIZERS
from tf_finetune.models import lora


def make_optimizer(name, learning_rate, weight_decay=0.0, *, rate_scales=None, ema_momentum=0.0):
    """A Keras optimizer by name.

    Args:
        name: one of `OPTIMIZERS`.
        learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule`.
        weight_decay: decoupled weight decay (adamw: 0.004 when 0; sgd: none when 0).
        rate_scales: optional `{variable path: multiplier}` (see `layer_decay_scales`);
            variables not named train at the full rate.
        ema_momentum: when > 0, the optimizer also keeps an exponential moving average of
            the weights (`use_ema=True`); `keras.callbacks.SwapEMAWeights` evaluates with it.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer; expected one of {OPTIMIZERS}. Received: name={name!r}")
    scaled = bool(rate_scales) and any(scale != 1.0 for scale in rate_scales.values())
    cls = {
        "adam": (keras.optimizers.Adam, ScaledAdam),
        "adamw": (keras.optimizers.AdamW, ScaledAdamW),
        "sgd": (keras.optimizers.SGD, ScaledSGD),
        "rmsprop": (keras.optimizers.RMSprop, ScaledRMSprop),
    }[name][scaled]
    kwargs = {}
    if name == "adamw":
        kwargs["weight_decay"] = weight_decay or 0.004
    elif name == "sgd":
        kwargs.update(momentum=0.9, weight_decay=weight_decay or None)
    if scaled:
        kwargs["rate_scales"] = rate_scales
    if ema_momentum:
        kwargs.update(use_ema=True, ema_momentum=ema_momentum)
    optimizer = cls(learning_rate, **kwargs)
    if name == "adamw":
        # As in BERT: no decay on biases and normalization scales/offsets.
        optimizer.exclude_from_weight_decay(var_names=["^bias$", "^gamma$", "^beta$"])
    return optimizer


def layer_decay_scales(model, decay):
    """`{variable path: decay ** k}` where k counts the trainable layers above the variable's.

    See the module docstring for what a layer is. A variable shared by two layers takes the
    scale of the higher one.
    """
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"The layer decay must be in (0, 1]. Received: decay={decay}")
    scales = {}
    depth = 0
    for layer in reversed(model.layers):
        variables = layer.trainable_variables
        if not variables:
            continue
        for variable in variables:
            scales.setdefault(variable.path, decay ** depth)
        depth += 1
    return scales


def loraplus_scales(model, ratio):
    """`{path: ratio}` for the B matrix of every adapted layer of `model` that trains (LoRA+)."""
    trainable = {id(v) for v in model.trainable_variables}
    return {layer.lora_kernel_b.path: float(ratio) for layer in lora.adapted_layers(model)
            if id(layer.lora_kernel_b) in trainable}


def stage_rate_scales(model, layer_decay=1.0, loraplus_lr_ratio=1.0):
    """The per-variable multipliers of a stage's rate: `layer_decay_scales` times
    `loraplus_scales`; None when every variable trains at the schedule's rate."""
    scales = layer_decay_scales(model, layer_decay) if layer_decay != 1.0 else {}
    if loraplus_lr_ratio != 1.0:
        for path, ratio in loraplus_scales(model, loraplus_lr_ratio).items():
            scales[path] = scales.get(path, 1.0) * ratio
    return scales or None


def format_scales(scales, max_groups=12):
    """One line per distinct multiplier, e.g. `x0.8000: transformer_layer_5 (16 variables)`."""
    groups = {}
    for path, scale in scales.items():
        groups.setdefault(scale, set()).add(path.split("/")[0])
    lines = []
    for scale in sorted(groups, reverse=True)[:max_groups]:
        owners = sorted(groups[scale])
        count = sum(1 for s in scales.values() if s == scale)
        lines.append(f"x{scale:.4f}: {', '.join(owners)} ({count} variables)")
    return lines


class _ScaledRates:
    """Mixin: multiplies the learning rate of each variable by `rate_scales[variable.path]`."""

    def __init__(self, *args, rate_scales=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.rate_scales = dict(rate_scales or {})

    def build(self, variables):
        super().build(variables)
        # In the order of the optimizer's own variable index (`_get_variable_index`).
        self._scale_by_index = [float(self.rate_scales.get(v.path, 1.0)) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        scale = self._scale_by_index[self._get_variable_index(variable)]
        if scale != 1.0:
            learning_rate = learning_rate * scale
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "rate_scales": self.rate_scales}


def _scaled(base):
    """`Scaled<base>`: the Keras optimizer `base` with `_ScaledRates`, registered so that a saved
    model's compiled optimizer loads again."""
    cls = type(f"Scaled{base.__name__}", (_ScaledRates, base), {"__module__": __name__})
    return keras.saving.register_keras_serializable(package="tf_finetune")(cls)


ScaledAdam = _scaled(keras.optimizers.Adam)
ScaledAdamW = _scaled(keras.optimizers.AdamW)
ScaledSGD = _scaled(keras.optimizers.SGD)
ScaledRMSprop = _scaled(keras.optimizers.RMSprop)


def sgd_rate_from_adam(optimizer, peak_rate, momentum=0.9):
    """The SGD (with momentum) rate whose steps are as large as Adam's were: the optimizer switch.

    At the end of an Adam(W) stage each parameter moved by about `rate * m / sqrt(v)` per
    step (`m`, `v` its bias-corrected first and second moment estimates). SGD with momentum
    `momentum` moves it by about `rate_sgd * g / (1 - momentum)` once the momentum has built
    up. Matching the root-mean-square of the two over all trainable parameters, with the
    gradient `g` estimated by `m`:

        rate_sgd = (1 - momentum) * peak_rate * rms(m / (sqrt(v) + eps)) / rms(m)

    `peak_rate` is the Adam stage's peak (a decayed schedule ends near 0, which says nothing
    of the step size the parameters took). With stationary gradients of size G this gives
    `(1 - momentum) * peak_rate / G` (Adam's steps are about `rate`; SGD's `rate_sgd * G / 0.1`).
    In the spirit of SWATS (Keskar & Socher 2017), which projects Adam's step onto the gradient.
    """
    import numpy as np

    step = max(int(keras.ops.convert_to_numpy(optimizer.iterations)), 1)
    beta_1, beta_2 = float(optimizer.beta_1), float(optimizer.beta_2)
    ratio_sq = first_sq = count = 0.0
    for m, v in zip(optimizer._momentums, optimizer._velocities):
        m = np.asarray(keras.ops.convert_to_numpy(m), np.float64) / (1 - beta_1 ** step)
        v = np.asarray(keras.ops.convert_to_numpy(v), np.float64) / (1 - beta_2 ** step)
        ratio_sq += float(np.sum((m / (np.sqrt(v) + optimizer.epsilon)) ** 2))
        first_sq += float(np.sum(m ** 2))
        count += m.size
    if not count or first_sq == 0.0:
        raise ValueError("The Adam optimizer has no moment estimates yet (it has not taken a step).")
    return float((1 - momentum) * peak_rate * np.sqrt(ratio_sq / count) / np.sqrt(first_sq / count))
