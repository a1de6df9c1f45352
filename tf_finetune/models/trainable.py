"""Make a stage's `trainable` true of a model: `head`, `top:N`, `from:LAYER`, `lora:R`, ...

The vocabulary is described in `tf_finetune.training.stages`. Every form works on the
project's view of its model, `Parts`: the pretrained backbone (one layer, or None) and its
blocks, bottom to top. "The head" is every layer that holds weights outside the blocks.
BatchNormalization layers stay frozen (inference mode) unless a stage trains them
(`batchnorm="train"`), and a `FrozenPrefix` stays frozen in every form; `as_built` puts back
exactly what the model factory left trainable.
"""

import dataclasses

import keras
import numpy as np

from tf_finetune.errors import UserError
from tf_finetune.models import freezing
from tf_finetune.models import lora
from tf_finetune.models.frozen_prefix import FrozenPrefix


@dataclasses.dataclass
class Parts:
    """The pretrained part of a model, as a project describes it.

    Attributes:
        backbone: the pretrained part as one layer (what `top_layers:N` counts the `layers`
            of), or None.
        blocks: the pretrained part as blocks, bottom to top, each a list of layers (what
            `top:N` and `from:LAYER` count); empty for a model trained from scratch.
    """

    backbone: object = None
    blocks: list = dataclasses.field(default_factory=list)

    def layer_names(self):
        """Names of every layer inside the blocks, at any depth."""
        return {layer.name for block in self.blocks for root in block
                for layer in root._flatten_layers(include_self=True, recursive=True)}


def layer_blocks(backbone):
    """Blocks of a backbone when nothing better is known: each top-level layer with weights."""
    if backbone is None:
        return []
    return [[layer] for layer in backbone.layers if layer.weights]


def capture(model):
    """Every layer's `trainable` flag and every BatchNormalization layer's momentum (to put
    back with `restore`): the model as built."""
    return [(layer, layer.trainable, layer.momentum if _is_batchnorm(layer) else None)
            for layer in model._flatten_layers(include_self=True, recursive=True)]


def restore(flags):
    """Puts back what `capture` took.

    `capture` lists a layer before its sublayers, so setting them in that order puts every flag
    back, whatever the recursive setter did to the sublayers first.
    """
    for layer, flag, _ in flags:
        layer.trainable = flag
    _restore_momentum(flags)


def _restore_momentum(flags):
    for layer, _, momentum in flags:
        if momentum is not None:
            layer.momentum = momentum


def apply_stage(model, stage, parts, as_built):
    """`apply` with a `Stage`'s fields."""
    return apply(model, stage.trainable, parts, as_built, lora_alpha=stage.lora_alpha,
                 lora_targets=stage.lora_targets, lora_init=stage.lora_init, batchnorm=stage.batchnorm,
                 batchnorm_momentum=stage.batchnorm_momentum, also_train=stage.also_train)


def batchnorm_statistics(model):
    """The moving means and variances of the BatchNormalization layers that train: state a
    backup must hold although no optimizer updates it."""
    return [v for layer in model._flatten_layers(include_self=False, recursive=True)
            if _is_batchnorm(layer) and layer.trainable for v in (layer.moving_mean, layer.moving_variance)]


def _is_batchnorm(layer):
    return isinstance(layer, keras.layers.BatchNormalization)


def apply(model, trainable, parts, as_built, *, lora_alpha=0.0, lora_targets=("query", "value"), lora_init="default",
          batchnorm="frozen", batchnorm_momentum=0.0, also_train=()):
    """Sets what trains in `model` for a stage's `trainable`; returns a one-line description.

    Args:
        model: the model.
        trainable: the stage's form, e.g. "head", "top:3", "from:block_13_expand", "lora:8".
        parts: the model's `Parts`.
        as_built: `capture(model)` taken right after the model was built.
        lora_alpha, lora_targets, lora_init: the stage's LoRA settings (for "lora:R").
        batchnorm: "frozen", or "train" to train the BatchNormalization layers inside what
            trains (not available with "as_built").
        batchnorm_momentum: their moving statistics' momentum when they train; 0 = as built.
        also_train: names of layers inside the blocks that train in full too.
    """
    kind, _, argument = trainable.partition(":")
    if kind == "as_built":
        restore(as_built)
        return "as the model was built" + _also_train(parts, also_train, keep=True)
    _restore_momentum(as_built)  # an earlier stage may have changed them
    described = _set_trainable(model, kind, argument, parts, lora_alpha, lora_targets, lora_init,
                               keep=batchnorm != "train")
    described += _also_train(parts, also_train, keep=batchnorm != "train")
    _refreeze_prefixes(model)
    _keep_adapters_only(model)
    if batchnorm == "train":
        training = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
                    if _is_batchnorm(layer) and layer.trainable]
        for layer in training:
            layer.momentum = batchnorm_momentum or layer.momentum
        momentum = f"momentum {batchnorm_momentum:g}" if batchnorm_momentum else "momentum as built"
        described += f"; {len(training)} BatchNorm layers train ({momentum})"
    return described


def _set_trainable(model, kind, argument, parts, lora_alpha, lora_targets, lora_init, keep):
    freezing.unfreeze(model, keep_batchnorm_frozen=keep)
    if kind == "all":
        return "everything"
    if kind == "top_layers":
        n = freezing.unfreeze_top(parts.backbone, int(argument), keep_batchnorm_frozen=keep)
        return f"the head and the top {n} layers of {parts.backbone.name!r}"
    for layer in _pretrained_layers(parts):
        freezing.freeze(layer)
    chosen = _chosen_blocks(parts, kind, argument)
    if kind == "top":
        described = f"the head and the top {len(chosen)} of {len(parts.blocks)} blocks"
    elif kind == "from":
        described = f"the head and the top {len(chosen)} of {len(parts.blocks)} blocks (from {argument!r})"
    else:  # head, lora
        described = "the head"
    for block in chosen:
        for layer in block:
            freezing.unfreeze(layer, keep_batchnorm_frozen=keep)
    if kind == "lora":
        targets = lora.find_targets([layer for block in parts.blocks for layer in block], lora_targets)
        adapted = lora.enable([layer for found in targets.values() for layer in found], int(argument), lora_alpha,
                              init=lora_init)
        _unfreeze_only(parts.blocks, adapted)
        described += f" and rank-{argument} adapters on {len(adapted)} layers ({', '.join(lora_targets)})"
        if lora_init == "pissa":
            described += ", started from their kernels' principal directions (PiSSA)"
    return described


def _chosen_blocks(parts, kind, argument):
    """The blocks that `top:N` and `from:LAYER` unfreeze; none for the other forms."""
    if kind == "top":
        n = int(argument)
        return parts.blocks[len(parts.blocks) - n:] if n else []
    if kind == "from":
        return next(parts.blocks[i:] for i, block in enumerate(parts.blocks)
                    if argument in {layer.name for root in block
                                    for layer in root._flatten_layers(include_self=True, recursive=True)})
    return []


def check_pissa(plan, parts):
    """One line for a `lora_init = "pissa"` stage the trainer could not resume exactly: a
    target whose kernel an earlier stage trains in full (a resumed run rebuilds the model and
    splits the kernel as built, not as that stage left it), or a rank past the kernel's."""
    for index, stage in enumerate(plan):
        if stage.trainable_kind != "lora" or stage.lora_init != "pissa":
            continue
        where = f"stage {index + 1} ({stage.name!r}), field lora_init"
        targets = lora.find_targets([layer for block in parts.blocks for layer in block], stage.lora_targets)
        rank = int(stage.trainable_argument)
        for name, layers in targets.items():
            for layer in layers:
                shape = tuple(layer.kernel.shape)
                most = min(int(np.prod(shape[:-1])), shape[-1])  # the rank of the matrix Keras adapts
                if not layer.lora_enabled and rank > most:
                    raise UserError(f"{where}: 'pissa' takes rank {rank} from {name!r}, whose kernel {shape} has "
                                    f"rank at most {most}: lower the rank, or use lora_init = \"default\". "
                                    "Received: lora_init='pissa'")
        for before_index, before in enumerate(plan[:index]):
            trained = _trained_in_full(before, parts) & set(stage.lora_targets)
            if trained:
                raise UserError(f"{where}: 'pissa' splits each target's kernel as the stage finds it, but stage "
                                f"{before_index + 1} ({before.name!r}) trains {sorted(trained)[0]!r} in full before "
                                "it, and a resumed run could not split that kernel again: leave the layer out of "
                                "one of the two stages, or use lora_init = \"default\". Received: lora_init='pissa'")


def _trained_in_full(stage, parts):
    """Names of the layers inside the blocks whose own weights `stage` may train (all of
    them for forms that depend on the model factory: `as_built`, `top_layers:N`, `all`)."""
    kind, argument = stage.trainable_kind, stage.trainable_argument
    chosen = parts.blocks if kind in ("all", "as_built", "top_layers") else _chosen_blocks(parts, kind, argument)
    roots = [root for block in chosen for root in block]
    roots += [layer for block in parts.blocks for root in block
              for layer in root._flatten_layers(include_self=True, recursive=True) if layer.name in stage.also_train]
    return {layer.name for root in roots for layer in root._flatten_layers(include_self=True, recursive=True)}


def _pretrained_layers(parts):
    """The blocks' layers and every layer inside the backbone (but not the backbone itself,
    which must stay trainable for the blocks inside it to train)."""
    layers = [layer for block in parts.blocks for layer in block]
    if parts.backbone is not None:
        layers += parts.backbone._flatten_layers(include_self=False, recursive=False)
    return layers


def _unfreeze_only(blocks, targets):
    """Within frozen `blocks`, makes `targets` (adapted layers) and the layers holding them
    trainable, with only the adapters' variables trainable."""
    _unfreeze_holders(blocks, targets)
    for layer in targets:
        lora.freeze_all_but_adapters(layer)


def _also_train(parts, names, keep):
    """Makes the layers called `names` inside the blocks train in full, and the layers
    holding them trainable without their own weights; returns the description's addition."""
    if not names:
        return ""
    wanted = set(names)
    found = []
    for block in parts.blocks:
        for root in block:
            for layer in root._flatten_layers(include_self=True, recursive=True):
                if layer.name in wanted:
                    freezing.unfreeze(layer, keep_batchnorm_frozen=keep)
                    found.append(layer)
    _unfreeze_holders(parts.blocks, found)
    count = sum(int(keras.ops.size(v)) for layer in found for v in layer.trainable_variables)
    return f"; also {len(found)} layers in full ({', '.join(names)}: {count:,} parameters)"


def _unfreeze_holders(blocks, targets):
    """Makes the layers holding `targets` trainable (so the targets' weights reach the
    optimizer) without training those layers' own variables."""
    target_ids = {id(layer) for layer in targets}
    for block in blocks:
        for root in block:
            for layer in root._flatten_layers(include_self=True, recursive=True):
                if id(layer) in target_ids:
                    continue
                inside = {id(sub) for sub in layer._flatten_layers(include_self=False, recursive=True)}
                if inside & target_ids and not layer.trainable:
                    layer._trainable = True  # this layer only, not its sublayers
                    for variable in layer._trainable_variables:
                        variable.trainable = False


def _keep_adapters_only(model):
    """Adapted layers (from an earlier LoRA stage) train their adapters, never their kernels."""
    for layer in lora.adapted_layers(model):
        if layer.trainable:
            lora.freeze_all_but_adapters(layer)


def _refreeze_prefixes(model):
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, FrozenPrefix):
            freezing.freeze(layer)


def trainable_count(model):
    """Trainable parameters of `model`."""
    return sum(int(keras.ops.size(w)) for w in model.trainable_weights)
