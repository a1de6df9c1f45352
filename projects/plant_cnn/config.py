"""Settings of the plant_cnn project: the shared TrainConfig plus backbone and augmentation."""

import dataclasses
import typing

from tf_finetune.config import TrainConfig
from tf_finetune.config import option
from tf_finetune.data.image_header import DEFAULT_MAX_PIXELS
from tf_finetune.errors import UserError

# Dataset folder name (under $TF_FINETUNE_DATA) -> TFDS dataset used when online.
TFDS_NAMES = {"plantvillage": "plant_village", "flowers": "tf_flowers"}
# Square input size per backbone when --image-size is 0.
DEFAULT_IMAGE_SIZE = {"seed_cnn": 150}
# Width multiplier per backbone when --alpha is 0: the variants with offline weights.
DEFAULT_ALPHA = {"mobilenet_v2": 0.35, "MobileNetV2": 0.35, "mobilenet": 0.75, "MobileNet": 0.75}


@dataclasses.dataclass(frozen=True)
class PlantConfig(TrainConfig):
    dataset: str = option(
        "plantvillage",
        "Dataset name: the folder under $TF_FINETUNE_DATA, and the TFDS fallback online "
        "(plantvillage -> plant_village, flowers -> tf_flowers).",
    )
    backbone: str = option(
        "mobilenet_v2",
        "seed_cnn (the seed's small CNN, from scratch), mobilenet_v2, mobilenet, or any "
        "keras.applications model name (e.g. EfficientNetB0).",
    )
    alpha: float = option(0.0, "Width multiplier of MobileNets (0 = 0.35 for mobilenet_v2, 0.75 for mobilenet, the offline weights).")
    weights: str = option("imagenet", "Backbone weights: imagenet, none (train from scratch), or a .h5 weights file.")
    image_size: int = option(0, "Square input size in pixels (0 = 150 for seed_cnn, 224 otherwise).")
    max_image_pixels: int = option(
        DEFAULT_MAX_PIXELS,
        "Largest width x height an image may declare in its header, checked before decoding "
        "(a 20000x20000 PNG is a few KB on disk and 1.2 GB decoded): training skips and counts "
        "larger images, predict and the exported SavedModel reject them (0 = no limit).",
    )
    pooling: str = option(
        "avg",
        "How the head pools the backbone's feature map: avg (global average), max (global "
        "max), or avgmax (both, concatenated: fastai's concat pooling).",
        ("avg", "max", "avgmax"),
    )
    dropout: float = option(0.2, "Dropout before the classification layer.")
    # Augmentation, with ImageDataGenerator's argument names and meanings.
    rotation_range: float = option(0.0, "Random rotation range in degrees.")
    width_shift_range: float = option(0.0, "Random horizontal shift, fraction of the width.")
    height_shift_range: float = option(0.0, "Random vertical shift, fraction of the height.")
    shear_range: float = option(0.0, "Random shear angle in degrees (as in ImageDataGenerator).")
    zoom_range: float = option(0.0, "Random zoom in [1 - z, 1 + z].")
    horizontal_flip: bool = option(True, "Random horizontal flips.")
    vertical_flip: bool = option(False, "Random vertical flips.")
    brightness_range: typing.Tuple[float, ...] = option((), "Random brightness factor range LOW HIGH, e.g. 0.8 1.2.")
    channel_shift_range: float = option(0.0, "Random channel shift in pixel values (0-255).")
    fill_mode: str = option("nearest", "How to fill pixels outside the image.", ("nearest", "constant", "reflect", "wrap"))
    random_resized_crop: typing.Tuple[float, ...] = option((), "Random resized crop area range MIN MAX, e.g. 0.5 1.0.")
    color_jitter: float = option(0.0, "Colour jitter strength j in [0, 1): brightness, contrast and saturation change by up to +-j.")
    # Batch mixing (keras.layers.MixUp / CutMix) on one-hot labels: training batches only.
    mixup: float = option(0.0, "MixUp: blend pairs of training images and their labels by a weight ~ Beta(a, a); a in [0, 1] (0 = off, 0.2 in the paper for ImageNet).")
    cutmix: float = option(0.0, "CutMix: paste a box of another training image, labels mixed by its area ~ Beta(a, a); a in [0, 1] (0 = off, 1.0 in the paper). With mixup too, each batch gets one of the two.")

    # Seconds-long, yet enough steps for the head to learn (about 0.8 validation accuracy on
    # PlantVillage): 24 images per class at 128 px, 3 head epochs, top 20 layers fine-tuned.
    SMOKE: typing.ClassVar[dict] = {
        **TrainConfig.SMOKE,
        "image_size": 128,
        "max_examples_per_class": 24,
        "epochs": 3,
        "learning_rate": 3e-3,
        "unfreeze_top": 20,
    }

    def __post_init__(self):
        super().__post_init__()
        if self.max_image_pixels < 0:
            raise UserError(
                "--max-image-pixels must be >= 0 (0 = no limit). Received: "
                f"max_image_pixels={self.max_image_pixels}"
            )

        for name in ("mixup", "cutmix"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise UserError(f"--{name} must be in [0, 1] (0 = off). Received: {name}={value}")

    def resolved_image_size(self):
        return self.image_size or DEFAULT_IMAGE_SIZE.get(self.backbone, 224)

    def resolved_alpha(self):
        return self.alpha or DEFAULT_ALPHA.get(self.backbone, 1.0)

    def augmentation_kwargs(self):
        """The ImageAugmentation arguments of this config (ImageDataGenerator names)."""
        kwargs = dict(
            rotation_range=self.rotation_range,
            width_shift_range=self.width_shift_range,
            height_shift_range=self.height_shift_range,
            shear_range=self.shear_range,
            zoom_range=self.zoom_range,
            horizontal_flip=self.horizontal_flip,
            vertical_flip=self.vertical_flip,
            channel_shift_range=self.channel_shift_range,
            fill_mode=self.fill_mode,
        )
        if self.brightness_range:
            kwargs["brightness_range"] = tuple(self.brightness_range)
        if self.random_resized_crop:
            kwargs["random_resized_crop"] = tuple(self.random_resized_crop)
        if self.color_jitter:
            j = self.color_jitter
            # RandomSaturation's factor f scales saturation by f / (1 - f) (0.5 = unchanged),
            # so a +-j change is the range below, not `j` itself.
            saturation = ((1 - j) / (2 - j), (1 + j) / (2 + j))
            kwargs["color_jitter"] = {"brightness": j, "contrast": j, "saturation": saturation}
        return kwargs
