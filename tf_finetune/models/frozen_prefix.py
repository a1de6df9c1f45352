"""Frozen-prefix caching: run a model's frozen bottom once, then train only its top.

When the bottom of a model is frozen (BERT's embeddings and first transformer layers, say),
every epoch recomputes exactly the same outputs for it. A model marks that bottom by wrapping
it in `FrozenPrefix`; the trainer then

1. splits the model at that layer (`split_model`): `prefix` maps the model's inputs to the
   frozen outputs, `top` maps those to the model's outputs and shares its layers with the
   model, so training `top` trains the model;
2. runs `prefix` once over the training and validation data and keeps the outputs in memory
   (`tf_finetune.training.prefix_cache.PrefixCache`);
3. fits `top` on batches of the cached outputs, reshuffled and re-batched every epoch.

The frozen prefix always runs in inference mode (dropout off), cached or not, so both routes
compute the same function of the same weights.

The prefix's outputs may be a `(sequence, padding_mask)` pair, `[B, T, D]` and `[B, T]`, or a
single tensor `[B, ...]`.
"""

import keras

NAME = "frozen_prefix"


@keras.saving.register_keras_serializable(package="tf_finetune")
class FrozenPrefix(keras.layers.Wrapper):
    """Runs `layer` frozen and in inference mode: the bottom of a model that never trains.

    Keras 3 functional models pass the outer `training` flag down to every nested layer, so
    `base(x, training=False)` alone does not keep dropout off once the outer model trains.
    This wrapper does, and it marks where `split_model` cuts the model.

    Args:
        layer: the frozen part, e.g. a functional model from token ids to hidden states.
    """

    def __init__(self, layer, **kwargs):
        kwargs.setdefault("name", NAME)
        kwargs.pop("trainable", None)
        super().__init__(layer, **kwargs)
        self._freeze()

    def build(self, input_shape=None):
        super().build(input_shape)
        self._freeze()

    def _freeze(self):
        # Every layer below, one by one: `trainable = False` on the wrapper is not enough after
        # loading, where a keras-hub layer deserialized frozen builds sublayers that are
        # trainable and that its own flag no longer reaches.
        self.trainable = False
        for layer in self.layer._flatten_layers(include_self=True, recursive=True):
            layer.trainable = False

    def call(self, inputs):
        return self.layer(inputs, training=False)

    def compute_output_spec(self, inputs):
        return self.layer.compute_output_spec(inputs)


def find_frozen_prefix(model):
    """The model's `FrozenPrefix` layer, or None."""
    found = [layer for layer in getattr(model, "layers", []) if isinstance(layer, FrozenPrefix)]
    if len(found) > 1:
        raise ValueError(
            f"A model can have one FrozenPrefix layer. Received: {[layer.name for layer in found]}"
        )
    return found[0] if found else None


def split_model(model):
    """`(prefix, top)` functional models around the model's `FrozenPrefix` layer.

    `prefix` maps the model's inputs to the frozen outputs; `top` maps those outputs to the
    model's outputs, with the model's own layers (training `top` trains `model`).
    """
    layer = find_frozen_prefix(model)
    if layer is None:
        raise ValueError(f"Model {model.name!r} has no FrozenPrefix layer to split at.")
    prefix = keras.Model(model.input, layer.output, name=f"{model.name}_prefix")
    if prefix.trainable_weights:
        raise ValueError(
            "Every layer below the FrozenPrefix layer must be frozen too. Received trainable: "
            f"{sorted({w.path.split('/')[0] for w in prefix.trainable_weights})}"
        )
    top = keras.Model(layer.output, model.output, name=f"{model.name}_top")
    return prefix, top


# Weightless layers after a backbone that compute the same at training and inference, and so
# may join a cached prefix (dropout and noise layers may not).
_DETERMINISTIC = ("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
                  "ConcatPooling2D", "Flatten")


def split_after(model, layer):
    """`(prefix, top)` functional models cut after `layer` (a frozen backbone called once in
    `model`) and the pooling that follows it; None when the model does not split cleanly
    there (the layer is not called exactly once, or its output feeds more than one layer).

    Like `split_model`, but for a bottom that is frozen in one stage only: `top` holds the
    model's own layers above the cut, so training it trains `model`.
    """
    def consumers(operation):
        return [other for other in model.layers
                if any(getattr(t, "_keras_history", (None,))[0] is operation for t in keras.tree.flatten(other.input))]

    if layer not in model.layers or len(consumers(layer)) != 1:
        return None
    after = consumers(layer)[0]
    cut = after.input
    while type(after).__name__ in _DETERMINISTIC and not after.weights:
        cut = after.output
        following = consumers(after)
        if len(following) != 1:
            break
        after = following[0]
    if not isinstance(cut, keras.KerasTensor):
        return None
    prefix = keras.Model(model.inputs, cut, name=f"{model.name}_frozen_bottom")
    top = keras.Model(cut, model.outputs, name=f"{model.name}_head")
    return prefix, top
