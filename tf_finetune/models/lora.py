"""Low-rank adapters (LoRA, Hu et al. 2021) on a model's Dense and EinsumDense layers.

Keras 3 has LoRA built in: `layer.enable_lora(rank, lora_alpha)` on a built `Dense` or
`EinsumDense` freezes its kernel and adds two trainable matrices `A` (in x rank) and `B`
(rank x out, zeros at first), so the layer computes with `kernel + alpha / rank * A @ B`.
This module finds the layers to adapt by name, anywhere inside a model (keras-hub's BERT
keeps its attention projections inside each transformer layer: `query`, `key`, `value`,
`attention_output`), and turns an adapted model back into an ordinary one for export.

Keras starts `A` random and `B` at zeros, so training begins from the pretrained layer and the
adapters learn a change from a random direction. PiSSA (Meng et al. 2024; PEFT's
`init_lora_weights="pissa"`) starts them from the kernel's principal directions instead: with
the kernel's SVD `U S V^T`, `A = U_r sqrt(S_r / s)`, `B = sqrt(S_r / s) V_r^T` (`s = alpha / rank`)
and the frozen kernel becomes the residual `kernel - s * A @ B`. The layer computes exactly
what it did (up to rounding), and the adapters train the directions that carry most of the
kernel. Keras's adapters of an N-d kernel (EinsumDense) act on its last axis, so the SVD is of
the kernel as a (product of the other axes) x (last axis) matrix.

Keras saves an adapted layer's kernel already merged (`save_own_variables`) and without the
adapter matrices, so a `.keras` file reloads as a plain model when the layer's config does
not ask for LoRA (layers built inside other layers, as keras-hub's, never do). `merged`
strips the request from configs that carry it, so every export is an ordinary model.
"""

import json
import os
import tempfile
import zipfile

import keras
import numpy as np

ADAPTABLE = (keras.layers.Dense, keras.layers.EinsumDense)


def find_targets(layers, names):
    """`{name: [layers]}`: the Dense/EinsumDense layers called `names`, at any depth of `layers`."""
    found = {name: [] for name in names}
    for root in layers:
        for layer in root._flatten_layers(include_self=True, recursive=True):
            if isinstance(layer, ADAPTABLE) and layer.name in found:
                found[layer.name].append(layer)
    return found


def adaptable_names(layers):
    """Names of every Dense/EinsumDense layer inside `layers` (for error messages)."""
    return sorted({layer.name for root in layers for layer in root._flatten_layers(include_self=True, recursive=True)
                   if isinstance(layer, ADAPTABLE)})


def enable(layers, rank, alpha=None, init="default"):
    """Adds rank-`rank` adapters to each of `layers` that has none yet; returns them all.

    `alpha` scales the adapters by `alpha / rank` (Keras's default: alpha = rank). `init` is
    "default" (Keras's: `A` random, `B` zeros) or "pissa" (`pissa`), for the layers that get
    their adapters here.
    """
    for layer in layers:
        if not layer.lora_enabled:
            layer.enable_lora(rank, lora_alpha=alpha or None)
            if init == "pissa":
                pissa(layer)
    return list(layers)


def pissa(layer):
    """Starts an adapted layer's adapters from its kernel's top `rank` singular directions and
    leaves the rest of the kernel frozen (PiSSA); the layer's output does not change.

    The SVD is taken in float64 of the kernel as the layer has it now, so a rebuilt model
    gets the same adapters and residual again (how a resumed run puts them back).
    """
    kernel = np.asarray(keras.ops.convert_to_numpy(layer._kernel), dtype=np.float64)
    shape, rank = kernel.shape, layer.lora_rank
    scale = layer.lora_alpha / rank
    matrix = kernel.reshape(-1, shape[-1])
    u, s, vh = np.linalg.svd(matrix, full_matrices=False)
    root = np.sqrt(s[:rank] / scale)
    a, b = u[:, :rank] * root, root[:, None] * vh[:rank]
    layer.lora_kernel_a.assign(a.reshape(shape[:-1] + (rank,)).astype("float32"))
    layer.lora_kernel_b.assign(b.astype("float32"))
    layer._kernel.assign((matrix - scale * a @ b).reshape(shape).astype(layer._kernel.dtype))


def freeze_all_but_adapters(layer):
    """Leaves only the adapter matrices of an adapted layer trainable (not its kernel or bias).

    Keras's `trainable` setter marks every variable of a layer trainable again, kernel
    included; call this after any change of `trainable` that reached the layer.
    """
    layer.trainable = True
    for variable in layer._trainable_variables:
        variable.trainable = variable is layer.lora_kernel_a or variable is layer.lora_kernel_b


def adapted_layers(model):
    """The layers of `model` (any depth) with adapters enabled."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if getattr(layer, "lora_enabled", False)]


def merged(model):
    """`model` as an ordinary Keras model: adapters merged into the kernels, none left.

    The model is saved (Keras writes merged kernels and no adapters), the saved config loses
    its LoRA requests, and the file is loaded back (with its assets, such as a tokenizer's
    vocabulary). A model without adapters is returned as it is.
    """
    if not adapted_layers(model):
        return model
    with tempfile.TemporaryDirectory(prefix="tf_finetune_lora_") as folder:
        saved, plain = os.path.join(folder, "adapted.keras"), os.path.join(folder, "merged.keras")
        model.save(saved)
        with zipfile.ZipFile(saved) as source, zipfile.ZipFile(plain, "w") as target:
            for item in source.infolist():
                data = source.read(item.filename)
                if item.filename == "config.json":
                    data = json.dumps(_without_lora(json.loads(data))).encode("utf-8")
                target.writestr(item, data)
        return keras.models.load_model(plain)


def _without_lora(config):
    """A serialized config with every layer's `lora_rank`/`lora_alpha` removed."""
    if isinstance(config, dict):
        return {k: _without_lora(v) for k, v in config.items() if k not in ("lora_rank", "lora_alpha")}
    if isinstance(config, list):
        return [_without_lora(v) for v in config]
    return config
