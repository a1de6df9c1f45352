"""tf-finetune: fine-tune pretrained models with TensorFlow and Keras 3.

Modules (one concept each; nothing heavy happens at import time):

- `config`: frozen dataclass configs, config files, CLI flags and `--smoke`.
- `locate`: where data and weights come from (`--data-dir`, `$TF_FINETUNE_DATA`, online).
- `image_folder`: one-subfolder-per-class image data, stratified split, `tf.data` pipelines.
- `augmentation`: ImageDataGenerator-style augmentation from Keras preprocessing layers.
- `freezing`: freeze / unfreeze layers, BatchNorm kept in inference mode.
- `schedules`: learning-rate schedules from config, with linear warmup.
- `strategy`: choose a `tf.distribute` strategy.
- `trainer`: the one place that compiles and fits (callbacks, checkpoints, two phases).
- `metrics`, `plots`: classification report, metrics.json, PNG plots.
- `export`: SavedModel export that serves raw inputs, written atomically and verified.
- `cli`: the `train|evaluate|export|predict` command line every project shares.
"""

__version__ = "0.1.0"
