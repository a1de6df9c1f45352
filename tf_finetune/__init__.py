"""tf-finetune: fine-tune pretrained models with TensorFlow and Keras 3.

The core, by concern (nothing heavy happens at import time; TensorFlow loads when used):

- `data`: where data comes from (`--data-dir`, `$TF_FINETUNE_DATA`, online) and how it
  becomes `tf.data` batches (image folders, text tables, length buckets, splits).
- `augmentation`: ImageDataGenerator-style image augmentation and EDA text augmentation as
  Keras layers inside `tf.data`.
- `models`: pretrained backbones, freezing, frozen prefixes.
- `training`: the `Trainer` (phases, callbacks, backups and exact resume), schedules,
  optimizers, `tf.distribute` strategies.
- `reporting`: metrics.json, text tables and plots.
- `serving`: raw-input SavedModel export, verified before it is published.
- `tasks`: what the CLI does around a model's output (`ClassificationTask`, the `Task`
  protocol).
- `cli`: the `train|evaluate|export|predict` command line every project shares.

And the pieces they share: `config` (dataclass configs, config files and flags), `project`
(what a project supplies), `run_dir` (the run directory's layout, reads and writes),
`files` (atomic writes) and `errors` (`UserError`, one line for the user).
"""

__version__ = "0.1.0"
