"""Model factory for plant_cnn: a pretrained backbone with a new head, or the seed CNN.

Every model takes RGB floats in [0, 255] of shape (size, size, 3); normalisation is inside
the model, so the exported SavedModel and `predict` need nothing but decoded pixels.
"""

import keras

from tf_finetune.models import applications
from tf_finetune.models import freezing

BACKBONE = "backbone"  # the name of the pretrained part, for `pretrained_backbone`


def build_model(config, data):
    """The classifier for `config` over `data.class_names` (a `Data`, or anything with them)."""
    num_classes = len(data.class_names)
    size = config.resolved_image_size()
    if config.backbone == "seed_cnn":
        return seed_cnn(size, num_classes)

    # === Layers ===
    backbone, preprocess = applications.build_backbone(
        config.backbone, image_size=size, alpha=config.resolved_alpha(), weights=config.weights
    )
    backbone.name = BACKBONE
    pretrained = config.weights not in ("none", None)
    if pretrained:
        # Phase 1 trains the head only; the trainer unfreezes the top for phase 2.
        freezing.freeze(backbone)

    # === Functional Model ===
    inputs = keras.Input((size, size, 3), name="image")
    x = preprocess(inputs)
    # training=False keeps BatchNorm in inference mode even once the backbone is unfrozen:
    # its statistics came from ImageNet and a small batch would wreck them.
    x = backbone(x, training=False)
    x = applications.global_pooling(config.pooling)(x)
    x = keras.layers.Dropout(config.dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"plant_cnn_{backbone_name(config)}")


def backbone_name(config):
    return config.backbone.lower()


def pretrained_blocks(model):
    """The backbone's blocks, bottom to top (MobileNetV2: stem, 16 inverted-residual blocks,
    top; MobileNet: stem and 13 depthwise-separable blocks); [] for seed_cnn."""
    backbone = pretrained_backbone(model)
    return [] if backbone is None else applications.blocks(backbone)


def pretrained_backbone(model):
    """The `keras.applications` backbone of a model `build_model` made; None for seed_cnn.

    It is what the fine-tune phase unfreezes. With `--weights none` it is trainable from the
    start, so there is nothing to unfreeze and the run has one phase.
    """
    return next((layer for layer in model.layers if layer.name == BACKBONE), None)


def seed_cnn(size, num_classes):
    """Seed 000 section 5.3: Conv 32/64/128 + Dense 512, trained from scratch."""
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for filters in (32, 64, 128):
        x = keras.layers.Conv2D(filters, 3, activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(512, activation="relu")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="seed_cnn")


def tensor_model(model, config):
    """The model for LiteRT and ONNX: it takes pixels already (the decoding is outside it)."""
    from tf_finetune.serving import tensor_model as tensors

    size = config.resolved_image_size()
    return tensors.same_inputs(model, {"kind": "image", "size": [size, size], "channels": 3,
                                       "resize": "bilinear", "dtype": "float32"})
