"""Freeze and unfreeze layers for transfer learning, keeping BatchNorm in inference mode.

Keras 3 facts this module relies on:

- Setting `layer.trainable` is recursive: it sets every sublayer (and nested model) too, so
  `model.trainable = True` also makes every BatchNormalization inside trainable again.
  `unfreeze` therefore re-freezes the BatchNorm layers afterwards.
- But with the TensorFlow backend, assigning the value a layer already has is a no-op
  (`KerasAutoTrackable.__setattr__` short-circuits `self.x = self.x`), so the recursion does
  not run: after `backbone.trainable = False`, `model.trainable = True` leaves the backbone
  frozen because `model.trainable` was already True. `freeze`/`unfreeze` therefore set the
  flag on every layer at every depth explicitly.
- A BatchNormalization layer with `trainable=False` runs in inference mode even when the
  model is called with `training=True`: it normalises with its moving mean/variance and does
  not update them. This is what you want when fine-tuning on small data.
- A functional model's `model.layers` starts with its `InputLayer` (it owns no weights); a
  `keras.Sequential` model's `model.layers` does not. "The first N layers" in this module
  always means `model.layers[:N]`, exactly like the usual Keras idiom
  `for layer in model.layers[:N]: layer.trainable = False`.
- Changes to `trainable` take effect at the next `model.compile(...)`: compile (again) after
  freezing or unfreezing.
"""

import keras
import numpy as np


def _all_layers(layer):
    """`layer` and every sublayer inside it (recursively, through nested models), once each."""
    # `_flatten_layers` is how Keras itself walks sublayers, also inside custom layers.
    return layer._flatten_layers(include_self=True, recursive=True)


def _set_trainable(layer, value):
    """Set `trainable=value` on `layer` and on every sublayer, at every depth."""
    # Not just `layer.trainable = value`: that is skipped when `layer.trainable` already
    # equals `value`, even if some sublayers differ (see the module docstring).
    for sublayer in _all_layers(layer):
        sublayer.trainable = value


def _freeze_batchnorm(layer):
    """Set `trainable=False` on every BatchNormalization inside `layer` (itself included)."""
    for sublayer in _all_layers(layer):
        if isinstance(sublayer, keras.layers.BatchNormalization):
            sublayer.trainable = False


def freeze(layer):
    """Make `layer` (a layer or a whole, possibly nested, model) non-trainable.

    Args:
        layer: a `keras.layers.Layer` or `keras.Model`. All its sublayers are frozen too.
    """
    _set_trainable(layer, False)


def unfreeze(layer, keep_batchnorm_frozen=True):
    """Make `layer` (a layer or a whole, possibly nested, model) trainable.

    Args:
        layer: a `keras.layers.Layer` or `keras.Model`. All its sublayers become trainable.
        keep_batchnorm_frozen: if True (the default), every `keras.layers.BatchNormalization`
            inside `layer`, at any depth, stays `trainable=False`, so it keeps running in
            inference mode with its pretrained moving statistics.
    """
    _set_trainable(layer, True)
    if keep_batchnorm_frozen:
        _freeze_batchnorm(layer)


def _check_model(model, fn_name):
    if not isinstance(model, keras.Model) or not model.layers:
        raise ValueError(
            f"`{fn_name}` needs a built `keras.Model` with layers. "
            f"Received: model={type(model).__name__}"
        )


def freeze_first(model, n=None, *, up_to=None, keep_batchnorm_frozen=True):
    """Freeze the first layers of `model.layers` and make the rest trainable.

    "First N" counts `model.layers` as Keras lists it: for a functional model the
    `InputLayer` is `model.layers[0]` and counts as one of the N (it owns no weights);
    a `keras.Sequential` model lists no InputLayer.

    Args:
        model: a `keras.Model`.
        n: freeze `model.layers[:n]`. Give exactly one of `n` and `up_to`.
        up_to: name of a layer in `model.layers`; freeze every layer up to and including it.
        keep_batchnorm_frozen: if True, BatchNormalization layers in the trainable rest stay
            frozen (inference mode).

    Returns:
        The number of layers of `model.layers` that were frozen.
    """
    _check_model(model, "freeze_first")
    if (n is None) == (up_to is None):
        raise ValueError(
            "Pass exactly one of `n` and `up_to` to `freeze_first`. "
            f"Received: n={n!r}, up_to={up_to!r}"
        )
    names = [layer.name for layer in model.layers]
    if up_to is not None:
        if up_to not in names:
            shown = ", ".join(repr(name) for name in names[:8])
            more = f", ... ({len(names)} layers)" if len(names) > 8 else ""
            raise ValueError(
                f"No layer named `up_to` in model '{model.name}'. Expected one of "
                f"{shown}{more}. Received: up_to={up_to!r}"
            )
        n = names.index(up_to) + 1
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(
            f"`n` must be a non-negative integer number of layers. Received: n={n!r}"
        )

    # 1) everything trainable (the model itself must be trainable for any layer to train)
    unfreeze(model, keep_batchnorm_frozen=keep_batchnorm_frozen)
    # 2) freeze the first n layers
    frozen = model.layers[:n]
    for layer in frozen:
        freeze(layer)
    return len(frozen)


def unfreeze_top(model, n, keep_batchnorm_frozen=True):
    """Make the last `n` layers of `model.layers` trainable and freeze everything before.

    Args:
        model: a `keras.Model`.
        n: how many of the last layers of `model.layers` to unfreeze. `-1` or `None` means
            all of them; a value larger than the number of layers also means all; `0` means
            none (the whole model is frozen).
        keep_batchnorm_frozen: if True, BatchNormalization layers in the unfrozen part stay
            frozen (inference mode).

    Returns:
        The number of layers of `model.layers` that are trainable afterwards. A
        BatchNormalization layer kept frozen is not counted, so with the default
        `keep_batchnorm_frozen=True` this can be less than `n`.
    """
    _check_model(model, "unfreeze_top")
    num_layers = len(model.layers)
    if n is None or n == -1:
        n = num_layers
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(
            "`n` must be a non-negative integer, or -1/None for all layers. "
            f"Received: n={n!r}"
        )
    n = min(n, num_layers)
    freeze_first(model, num_layers - n, keep_batchnorm_frozen=keep_batchnorm_frozen)
    return sum(1 for layer in model.layers if layer.trainable)


def frozen_params_in_top(model, n, keep_batchnorm_frozen=True):
    """How many parameters `unfreeze_top(model, n)` would make trainable that are frozen now.

    The model is left exactly as it was. 0 means unfreezing the top `n` layers would train
    nothing new (e.g. a backbone that was never frozen, because it has no pretrained weights).

    Args:
        model: a `keras.Model`.
        n: as for `unfreeze_top` (-1 or None: all layers).
        keep_batchnorm_frozen: as for `unfreeze_top`.
    """
    _check_model(model, "frozen_params_in_top")
    before = {id(w) for w in model.trainable_weights}
    # `_all_layers` lists a layer before its sublayers, so restoring in that order puts every
    # flag back, whatever the recursive setter did to the sublayers first.
    flags = [(layer, layer.trainable) for layer in _all_layers(model)]
    try:
        unfreeze_top(model, n, keep_batchnorm_frozen=keep_batchnorm_frozen)
        newly = [w for w in model.trainable_weights if id(w) not in before]
    finally:
        for layer, flag in flags:
            layer.trainable = flag
    return sum(int(np.prod(w.shape)) for w in newly)


def _own_weights(layer):
    """Weights that belong to `layer` itself, not to one of its sublayers."""
    sub_ids = {
        id(w) for sub in _all_layers(layer)[1:] for w in sub.weights
    }
    return [w for w in layer.weights if id(w) not in sub_ids]


def trainable_summary(model):
    """Count trainable and frozen parameters and weight-owning layers of `model`.

    Layers are counted at every depth (a nested backbone counts as its own layers, not as
    one). A layer counts as trainable when at least one of its own weights will be trained;
    a frozen BatchNormalization counts as frozen.

    Args:
        model: a built `keras.Model`.

    Returns:
        A dict with `trainable_params`, `non_trainable_params`, `total_params`,
        `trainable_layers` and `frozen_layers`.
    """
    trainable_ids = {id(w) for w in model.trainable_weights}
    trainable_params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    non_trainable_params = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)

    trainable_layers = frozen_layers = 0
    for layer in _all_layers(model):
        own = _own_weights(layer)
        if not own:
            continue
        if any(id(w) in trainable_ids for w in own):
            trainable_layers += 1
        else:
            frozen_layers += 1

    return {
        "trainable_params": trainable_params,
        "non_trainable_params": non_trainable_params,
        "total_params": trainable_params + non_trainable_params,
        "trainable_layers": trainable_layers,
        "frozen_layers": frozen_layers,
    }


def format_trainable_summary(model):
    """One human-readable line summarising `trainable_summary(model)`.

    Args:
        model: a built `keras.Model`.

    Returns:
        e.g. "model 'm': 1,234 of 5,678 params trainable (21.7%); 2 layers trainable, 5 frozen"
    """
    s = trainable_summary(model)
    share = 100.0 * s["trainable_params"] / s["total_params"] if s["total_params"] else 0.0
    return (
        f"model '{model.name}': {s['trainable_params']:,} of {s['total_params']:,} params "
        f"trainable ({share:.1f}%); {s['trainable_layers']} layers trainable, "
        f"{s['frozen_layers']} frozen"
    )
