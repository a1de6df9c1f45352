"""Data augmentation as Keras layers that run inside `tf.data` (or a model).

- `ImageAugmentation`: ImageDataGenerator's arguments, with the same names and meanings, on
  Keras preprocessing layers; geometric transforms composed into one `affine_resample`.
- `RandomBrightnessScale`, `RandomResizedCrop`: the two image layers Keras lacks.
- `TextAugmentation`, `RandomWordDeletion`, `RandomWordSwap`: EDA's random deletion and swap
  on `tf.string` batches.
- `BatchMixing`: MixUp and CutMix (`keras.layers.MixUp`, `keras.layers.CutMix`) on training
  batches with one-hot labels, one seed per batch.

Every layer is the identity at inference (`ImageAugmentation` still applies `rescale`). See
`docs/augmentation.md` for the ImageDataGenerator migration table.
"""

from tf_finetune._lazy import exports

__getattr__, __dir__, __all__ = exports(__name__, {
    "ImageAugmentation": "image_augmentation",
    "RandomBrightnessScale": "random_brightness_scale",
    "RandomResizedCrop": "random_resized_crop",
    "AugmentationStage": "stage",
    "BatchMixing": "batch_mixing",
    "SeedStream": "seeds",
    "affine_matrix": "affine",
    "affine_resample": "affine",
    "TextAugmentation": "text_augmentation",
    "RandomWordDeletion": "text_augmentation",
    "RandomWordSwap": "text_augmentation",
})
