"""Writing files so that readers never see a partial one."""

import contextlib
import json
import os
import pathlib
import secrets

from tf_finetune.errors import UserError


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary sibling of `path` to write; on success it replaces `path`.

    The temporary name keeps `path`'s extension (writers such as `model.save` and
    `np.savez` go by it) and starts with a dot. Parent folders are created. If the block
    raises, the temporary file is removed and `path` is left as it was.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = path.with_name(f".tmp-{secrets.token_hex(6)}-{path.name}")
    try:
        yield temp_path
        os.replace(temp_path, path)
    finally:
        temp_path.unlink(missing_ok=True)


def atomic_write_bytes(payload, path):
    """Writes `payload` to `path` atomically (temp file, fsync, rename)."""
    with atomic_path(path) as temp_path:
        with open(temp_path, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())


def check_writable_folder(path, flag, holds):
    """Fails early, with one line naming `flag`, when `path` cannot become a folder we write.

    `holds` says what the folder is for ("the versions", "the run").
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{flag} {path} is a file: pass a folder for {holds}.")
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise UserError(f"{flag} {path} is inside {probe}, which is a file: pass a folder for {holds}.")
    if not os.access(probe, os.W_OK):
        raise UserError(f"{flag} {path} is not writable: pass a folder you can write to.")
    return path


def write_json(data, path):
    """Write `data` as JSON (indent 2) to `path` atomically, creating parent directories.

    The JSON goes to a temporary file in the same directory, which then replaces `path` with
    `os.replace`, so readers see either the old file or the complete new one, never a partial
    write. NumPy scalars and arrays are converted to plain Python values. NaN / infinity are
    written as Python's `json` module writes them (`NaN`, `Infinity`).

    Args:
        data: a JSON-serialisable value.
        path: destination file (`str` or path-like).

    Returns:
        The destination as a `pathlib.Path`.

    Raises:
        TypeError: `data` holds a value JSON can't represent; `path` is left untouched.
    """
    path = pathlib.Path(path)
    # Serialise first, so an unserialisable value fails before anything touches the disk.
    text = json.dumps(data, indent=2, default=_to_builtin) + "\n"
    atomic_write_bytes(text.encode("utf-8"), path)
    return path


def _to_builtin(value):
    """`json.dumps` fallback: NumPy scalars / arrays and tensors to plain Python values."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "numpy"):  # An eager tf.Tensor.
        return _to_builtin(np.asarray(value.numpy()))
    if isinstance(value, pathlib.PurePath):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
