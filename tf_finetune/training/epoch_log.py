"""One row per epoch: `history.csv` and TensorBoard scalars, written by the trainer's loop.

`history.csv` has the columns `epoch`, `stage` and then every metric in the epoch's logs
(`loss`, `accuracy`, `val_*`, `learning_rate`, `epoch_seconds`, ...). A resumed run appends;
an epoch that runs again (after a kill) appears twice, and `RunDir.read_history` keeps its
last row. TensorBoard gets the same numbers, Keras's way: `logs/train` and `logs/validation`,
tags `epoch_<metric>`, the step being the epoch.
"""

import csv
import io
import os

from tf_finetune import files

FIRST_COLUMNS = ("epoch", "stage")


class EpochLog:
    """Appends epochs to a run's `history.csv` and TensorBoard logs.

    Args:
        history_file: the CSV file.
        logs_dir: the TensorBoard folder.
    """

    def __init__(self, history_file, logs_dir):
        self.history_file = history_file
        self.logs_dir = logs_dir
        self._writers = None

    def write(self, epoch, stage, logs):
        """Records epoch `epoch` (0-based) of stage `stage` with its `logs` (name -> number)."""
        self._append_row({"epoch": epoch, "stage": stage, **logs})
        self._summaries(epoch, logs)

    def close(self):
        for writer in (self._writers or {}).values():
            writer.close()
        self._writers = None

    def _append_row(self, row):
        header, rows = _read(self.history_file)
        columns = list(header) or list(FIRST_COLUMNS)
        columns += sorted(k for k in row if k not in columns)
        if columns != header:  # a new metric: rewrite the file with the wider header
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
            writer.writerow(_formatted(row))
            files.atomic_write_bytes(text.getvalue().encode("utf-8"), self.history_file)
            return
        with open(self.history_file, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=columns, restval="").writerow(_formatted(row))

    def _summaries(self, epoch, logs):
        import tensorflow as tf

        if self._writers is None:
            self._writers = {name: tf.summary.create_file_writer(os.path.join(self.logs_dir, name))
                             for name in ("train", "validation")}
        for key, value in logs.items():
            if not isinstance(value, (int, float)) or key == "epoch_seconds":
                continue
            name, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self._writers[name].as_default():
                tf.summary.scalar(f"epoch_{tag}", value, step=epoch)
        for writer in self._writers.values():
            writer.flush()


def _read(path):
    """(header, rows) of a history file, repeated headers (from older runs) dropped."""
    if not os.path.isfile(path):
        return [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if r.get("epoch") != "epoch"]
        return list(reader.fieldnames or []), rows


def _formatted(row):
    return {k: (repr(float(v)) if isinstance(v, float) else v) for k, v in row.items()}
