"""Where data and pretrained weights come from.

Data is resolved the way a user expects, first match wins:

1. an explicit `--data-dir DIR`,
2. `$TF_FINETUNE_DATA/<dataset>` when that folder exists,
3. the online source (a TFDS dataset), when it is already prepared locally or the
   internet is reachable,

and otherwise one clear error line saying which of these to set. Weights follow the same
idea: an explicit path, else `$TF_FINETUNE_DATA/weights/...`, else the online download.
"""

import dataclasses
import os
import socket

from tf_finetune.errors import UserError

DATA_ENV = "TF_FINETUNE_DATA"
OFFLINE_ENV = "TF_FINETUNE_OFFLINE"


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """A TensorFlow Datasets dataset to load instead of a local folder."""

    name: str


def data_root():
    """`$TF_FINETUNE_DATA` as an absolute path, or None when unset."""
    root = os.environ.get(DATA_ENV)
    return os.path.abspath(os.path.expanduser(root)) if root else None


def is_online(host="storage.googleapis.com", port=443, timeout=3.0):
    """True when a TCP connection to the download host succeeds.

    `TF_FINETUNE_OFFLINE=1` skips the check (and says offline).
    """
    if os.environ.get(OFFLINE_ENV, "").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tfds_prepared(name):
    """True when TFDS already has `name` prepared on disk (no network needed)."""
    try:
        import tensorflow_datasets as tfds

        return tfds.builder(name).is_prepared()
    except Exception:  # Unknown dataset, missing metadata: not prepared.
        return False


def resolve_data(data_dir, dataset, *, tfds_name=None, what="one subfolder of images per class"):
    """Resolves where a project's data comes from.

    Args:
        data_dir: the `--data-dir` value, or None.
        dataset: the dataset's folder name under `$TF_FINETUNE_DATA`.
        tfds_name: the TFDS dataset to fall back to, or None when there is none.
        what: the expected layout, for the error message.

    Returns:
        An absolute local path, or a `TfdsSource`.
    """
    if data_dir:
        path = os.path.abspath(os.path.expanduser(str(data_dir)))
        if not os.path.exists(path):
            raise UserError(f"--data-dir {path} does not exist: pass a folder with {what}.")
        return path
    root = data_root()
    if root and os.path.exists(os.path.join(root, dataset)):
        return os.path.join(root, dataset)
    if tfds_name and (tfds_prepared(tfds_name) or is_online()):
        return TfdsSource(tfds_name)
    env_hint = (
        f"${DATA_ENV}={root} has no {dataset}/"
        if root
        else f"set {DATA_ENV} to a folder that contains {dataset}/"
    )
    online = (
        f", or go online so TFDS can download {tfds_name!r}" if tfds_name else ""
    )
    raise UserError(
        f"No data found for {dataset!r}: pass --data-dir DIR ({what}), {env_hint}{online}."
    )


def resolve_weights_file(filename, *, subdir="keras_applications"):
    """`$TF_FINETUNE_DATA/weights/<subdir>/<filename>` when it exists, else None."""
    root = data_root()
    if root:
        path = os.path.join(root, "weights", subdir, filename)
        if os.path.isfile(path):
            return path
    return None
