"""ImageNet backbones from `keras.applications`, by name, with offline weights.

`build_backbone("mobilenet_v2", image_size=224, alpha=0.35, weights="imagenet")` returns the
no-top model and the matching `ApplicationPreprocess` layer, which applies the application's own
`preprocess_input` inside the model: the model takes RGB floats in [0, 255].

`weights` is `"imagenet"`, `"none"` or a weights file. For `"imagenet"` the Keras file is
taken from `$TF_FINETUNE_DATA/weights/keras_applications/` when it is there (same file name
Keras downloads), else downloaded by Keras; offline, that fails with one clear line.
"""

import importlib
import os
import re

import keras

from tf_finetune.data import locate
from tf_finetune.errors import UserError

# Short names -> keras.applications constructor names. Any constructor name works too.
ALIASES = {
    "mobilenet": "MobileNet",
    "mobilenet_v2": "MobileNetV2",
    "mobilenet_v3_small": "MobileNetV3Small",
    "mobilenet_v3_large": "MobileNetV3Large",
    "efficientnet_b0": "EfficientNetB0",
    "efficientnet_v2_b0": "EfficientNetV2B0",
    "resnet50": "ResNet50",
    "resnet50_v2": "ResNet50V2",
    "convnext_tiny": "ConvNeXtTiny",
    "inception_v3": "InceptionV3",
    "xception": "Xception",
    "densenet121": "DenseNet121",
    "nasnet_mobile": "NASNetMobile",
}
ALPHA_MODELS = ("MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large")
# How keras.applications name the layers of one block: MobileNetV2's block_7_expand,
# MobileNet's conv_dw_7 / conv_pw_7 / conv_pad_7, EfficientNet's block3b_..., ResNet's
# conv4_block2_..., Xception's block5_...
BLOCK_NAME = re.compile(r"^(block_?\d+[a-z]?|conv\d+_block\d+)_|^conv_(?:dw|pw|pad)_(\d+)")


def constructor_name(name):
    """The `keras.applications` constructor name for `name` (alias or constructor)."""
    ctor = ALIASES.get(name.lower(), name)
    if not callable(getattr(keras.applications, ctor, None)) or ctor[0].islower():
        options = ", ".join(sorted(ALIASES))
        raise UserError(
            f"Unknown backbone: use one of {options} or a keras.applications model name "
            f"(e.g. EfficientNetB0). Received: backbone={name!r}"
        )
    return ctor


@keras.saving.register_keras_serializable(package="tf_finetune")
class ApplicationPreprocess(keras.layers.Layer):
    """Applies `keras.applications.<module>.preprocess_input` in the model.

    Args:
        application: a `keras.applications` constructor name, e.g. "MobileNetV2".
    """

    def __init__(self, application, **kwargs):
        super().__init__(**kwargs)
        self.application = application
        module = getattr(keras.applications, application).__module__
        self._preprocess_input = importlib.import_module(module).preprocess_input

    def call(self, images):
        return self._preprocess_input(images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"application": self.application})
        return config


POOLINGS = ("avg", "max", "avgmax")


@keras.saving.register_keras_serializable(package="tf_finetune")
class ConcatPooling2D(keras.layers.Layer):
    """Global average and global max pooling side by side: (batch, H, W, C) -> (batch, 2C).

    fastai's `AdaptiveConcatPool2d`, the pooling of its default transfer-learning head. The
    average says how much of the image shows a feature; the maximum says whether any part
    shows it strongly, which a small lesion on a large leaf does not change the average of.
    """

    def call(self, inputs):
        return keras.ops.concatenate([keras.ops.mean(inputs, axis=(1, 2)), keras.ops.max(inputs, axis=(1, 2))],
                                     axis=-1)

    def compute_output_shape(self, input_shape):
        channels = None if input_shape[-1] is None else 2 * input_shape[-1]
        return (input_shape[0], channels)


def global_pooling(kind, name=None):
    """The layer that pools a backbone's feature map to a vector: "avg" (Keras's
    `GlobalAveragePooling2D`), "max" (`GlobalMaxPooling2D`) or "avgmax" (`ConcatPooling2D`)."""
    if kind == "avg":
        return keras.layers.GlobalAveragePooling2D(name=name or "avg_pool")
    if kind == "max":
        return keras.layers.GlobalMaxPooling2D(name=name or "max_pool")
    if kind == "avgmax":
        return ConcatPooling2D(name=name or "avgmax_pool")
    raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}. Received: {kind!r}")


def keras_weights_filename(ctor, alpha, image_size):
    """The file name Keras downloads for no-top ImageNet weights, where it is regular."""
    rows = image_size if image_size in (128, 160, 192, 224) else 224
    if ctor == "MobileNetV2":
        rows = image_size if image_size in (96, 128, 160, 192, 224) else 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"
    if ctor == "MobileNet":
        alpha_text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}.get(float(alpha))
        return alpha_text and f"mobilenet_{alpha_text}_{rows}_tf_no_top.h5"
    return None


def keras_cache_dir():
    """Where Keras keeps downloaded weights (`$KERAS_HOME/models`, default ~/.keras/models)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def _offline_message(ctor, alpha, described):
    offline = keras_weights_filename(ctor, alpha, 224)
    where = (
        f"set TF_FINETUNE_DATA to a folder with weights/keras_applications/{offline}"
        if offline else "run once where it can be downloaded"
    )
    return (
        f"Could not download ImageNet weights for {described} (offline?): pass --weights "
        f"PATH.h5, or {where}, or --weights none to train from scratch."
    )


def build_backbone(name, *, image_size, alpha=1.0, weights="imagenet"):
    """Builds a no-top `keras.applications` backbone.

    Returns:
        (backbone, preprocess_layer)
    """
    ctor = constructor_name(name)
    kwargs = {"include_top": False, "input_shape": (image_size, image_size, 3)}
    if ctor in ALPHA_MODELS:
        kwargs["alpha"] = alpha
    described = f"{ctor}" + (f" (alpha={alpha})" if ctor in ALPHA_MODELS else "")

    source = weights
    if weights in (None, "none"):
        source = None
    elif weights == "imagenet":
        filename = keras_weights_filename(ctor, alpha, image_size)
        local = filename and (
            locate.resolve_weights_file(filename)
            or locate.resolve_weights_file(keras_weights_filename(ctor, alpha, 224))
        )
        source = local or "imagenet"
        cached = filename and os.path.isfile(os.path.join(keras_cache_dir(), filename))
        if source == "imagenet" and not cached and not locate.is_online():
            raise UserError(_offline_message(ctor, alpha, described))
    else:
        source = os.path.abspath(os.path.expanduser(weights))
        if not os.path.isfile(source):
            raise UserError(
                f"--weights {source} does not exist: pass imagenet, none, or the path of a "
                f".h5 weights file for {described}."
            )

    try:
        backbone = getattr(keras.applications, ctor)(weights=source, **kwargs)
    except Exception as e:  # Download failures and incompatible files surface here.
        reason = " ".join(str(e).split())
        if source == "imagenet":
            raise UserError(_offline_message(ctor, alpha, described)) from None
        raise UserError(
            f"--weights {source} could not be loaded into {described}: {reason[:160]}. Pass weights "
            "saved from the same architecture and width."
        ) from None
    return backbone, ApplicationPreprocess(ctor, name="preprocess")


def blocks(backbone):
    """The backbone's blocks, bottom to top, each a list of its layers that hold weights.

    A block is the layers `keras.applications` names alike (`BLOCK_NAME`: MobileNetV2 has 16
    inverted-residual blocks, MobileNet 13 depthwise-separable ones); the layers before the
    first block form a `stem` block and those after the last a `top` block. A backbone whose
    names follow no such pattern has one block per layer with weights.
    """
    groups, in_blocks = {}, False
    for layer in backbone.layers:
        match = BLOCK_NAME.match(layer.name)
        if match:
            key, in_blocks = match.group(1) or f"conv_{match.group(2)}", True
        else:
            key = "top" if in_blocks else "stem"
        groups.setdefault(key, []).append(layer)
    found = [[layer for layer in group if layer.weights] for group in groups.values()]
    found = [group for group in found if group]
    if len(found) <= 2:  # nothing matched: one block per layer
        return [[layer] for layer in backbone.layers if layer.weights]
    return found
