"""Numbered export versions (TF Serving's `EXPORT_DIR/<version>/`), published atomically.

An export is written to a hidden temporary folder beside the versions, verified, and only
then renamed to its number, so a reader (TF Serving polls the folder) never sees a half-written
version. Two exports started at once into the same folder get distinct numbers: a number is
taken by creating `.reserved-<N>` with `os.mkdir`, which exactly one process can do, and the
reservation is dropped once the version folder exists (or the export failed).

A disk that fills while writing leaves nothing behind: `published` removes the temporary
folder and the reservation on any error, and turns "no space left" into one line.
"""

import contextlib
import errno
import os
import shutil
import tempfile

from tf_finetune import files
from tf_finetune.errors import UserError

RESERVED = ".reserved-"


def taken(export_dir):
    """The version numbers in `export_dir`, published or reserved."""
    if not os.path.isdir(export_dir):
        return set()
    numbers = set()
    for name in os.listdir(export_dir):
        digits = name[len(RESERVED):] if name.startswith(RESERVED) else name
        if digits.isdigit():
            numbers.add(int(digits))
    return numbers


def next_version(export_dir):
    """1 + the highest version published or reserved in `export_dir` (1 when there is none)."""
    return max(taken(export_dir), default=0) + 1


def reserve(export_dir):
    """Reserves the next free version number of `export_dir` for this process; returns it."""
    os.makedirs(export_dir, exist_ok=True)
    while True:
        version = next_version(export_dir)
        try:
            os.mkdir(os.path.join(export_dir, f"{RESERVED}{version}"))
        except FileExistsError:  # another export reserved it between our listing and mkdir
            continue
        if not os.path.exists(os.path.join(export_dir, str(version))):
            return version
        release(export_dir, version)  # published and released between our listing and mkdir


def release(export_dir, version):
    with contextlib.suppress(OSError):
        os.rmdir(os.path.join(export_dir, f"{RESERVED}{version}"))


FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def is_disk_full(error):
    """An OSError of a full disk (or a file-size limit), or TensorFlow's error for one (its
    writers raise their own types, with the system's message)."""
    if isinstance(error, OSError) and error.errno in FULL:
        return True
    return any(os.strerror(code) in str(error) for code in FULL)


@contextlib.contextmanager
def published(export_dir):
    """`with published(export_dir) as (version, tmp):` write the export into `tmp`; on a clean
    exit it is renamed to `export_dir/<version>`. On any error nothing is left behind.

    Yields `(version, tmp, final_path)`.
    """
    export_dir = files.check_writable_folder(export_dir, "--export-dir", "the versions")
    version = reserve(export_dir)
    final = os.path.join(export_dir, str(version))
    tmp = None
    try:
        tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir)
        yield version, tmp, final
        os.rename(tmp, final)
    except BaseException as e:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(e):
            reason = next(os.strerror(code) for code in FULL if os.strerror(code) in str(e) or
                          getattr(e, "errno", None) == code)
            raise UserError(
                f"--export-dir {export_dir}: the disk filled up while writing version {version} "
                f"({reason}); nothing was kept: free some space and export again."
            ) from None
        raise
    finally:
        release(export_dir, version)


TENSOR_FILES = (".tflite", ".onnx")


def find_export(path):
    """`(kind, path)` of what `predict --model PATH` runs, or None.

    `kind` is "saved_model" (a SavedModel folder) or "tensors" (a .tflite or .onnx file, or an
    export version folder with preprocessing.json and no SavedModel). A folder of numbered
    versions resolves to its newest version, whatever it holds.
    """
    if os.path.isfile(path):
        return ("tensors", path) if path.endswith(TENSOR_FILES) else None
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return "saved_model", path
    if os.path.isfile(os.path.join(path, "preprocessing.json")):
        return "tensors", path
    if os.path.isdir(path):
        for version in sorted((int(n) for n in os.listdir(path) if n.isdigit()), reverse=True):
            found = find_export(os.path.join(path, str(version)))
            if found:
                return found
    return None
