"""Where data comes from and how it becomes batches.

- `locate`: `--data-dir`, else `$TF_FINETUNE_DATA/<dataset>`, else the online source.
- `image_folder`: one-subfolder-per-class images (corrupt files skipped with a count),
  `tf.data` pipelines.
- `text_table`: CSV/TSV files of texts and labels (bad rows skipped with counts).
- `text_dataset`: raw-text batches grouped by length, with a known number of batches.
- `text_data`: what text projects share (`TextDataConfig`, `load_tables`, `make_data`).
- `image_header`: an image's declared size from its header, without decoding
  (`--max-image-pixels`).
- `splits`: the seeded stratified train/validation split.
"""

from tf_finetune._lazy import exports

__getattr__, __dir__, __all__ = exports(__name__, {
    "ImageFolder": "image_folder",
    "TextTable": "text_table",
    "TextDataConfig": "text_data",
    "TfdsSource": "locate",
    "resolve_data": "locate",
    "stratified_split": "splits",
    "image_size": "image_header",
    "make_text_dataset": "text_dataset",
})
