"""What a search leaves: the trials table, `best.toml`, and the TensorBoard HParams records.

```
TUNE/results.csv, results.md   one row per finished trial, best first
TUNE/best.toml                 the best trial's settings: train --config TUNE/best.toml
TUNE/trials/<id>/logs/hparams  each trial's settings and score, for TensorBoard's HParams tab
```
"""

import csv
import dataclasses
import io
import math
import os

from tf_finetune import files


@dataclasses.dataclass(frozen=True)
class TrialRow:
    """One trial in the table.

    Attributes:
        trial_id, status: KerasTuner's.
        values: the searched settings.
        score: the objective (None when the trial did not finish).
        epochs: epochs trained (summed over folds), seconds: training time.
    """

    trial_id: str
    status: str
    values: dict
    score: float = None
    epochs: int = 0
    seconds: float = 0.0


def sort_rows(rows, direction):
    """Finished trials best first (by `direction`), then the others by id."""
    done = [r for r in rows if r.score is not None and not math.isnan(r.score)]
    done.sort(key=lambda r: (-r.score if direction == "max" else r.score, r.trial_id))
    return done + sorted((r for r in rows if r not in done), key=lambda r: r.trial_id)


def write_table(rows, names, objective, path):
    """Writes `results.csv` and `results.md` into `path`; rows are `sort_rows`-ed already."""
    # "epochs trained" is what ran (a search may set `epochs` itself, a budget cut it short).
    header = ["trial", "status", objective, *names, "epochs trained", "seconds"]

    def cells(row):
        score = "" if row.score is None else f"{row.score:.4f}"
        return [row.trial_id, row.status, score, *(format_value(row.values.get(n, "")) for n in names), str(row.epochs),
                f"{row.seconds:.0f}"]

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(cells(r) for r in rows)
    files.atomic_write_bytes(out.getvalue().encode("utf-8"), os.path.join(path, "results.csv"))
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    files.atomic_write_bytes(("\n".join(lines) + "\n").encode("utf-8"), os.path.join(path, "results.md"))
    return "\n".join(lines)


def format_value(value):
    """A setting as the results table shows it (floats to 4 significant digits)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_best_config(config, path, comment):
    """Writes `config`'s settings that differ from its class defaults as TOML (`train --config`
    reads it back to the same config)."""
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    values = {k: v for k, v in config.to_dict().items() if v != defaults[k] and k not in ("fold", "folds")}
    lines = [f"# {line}" for line in comment.splitlines()]
    stages = values.pop("stages", ())
    lines += [f"{k} = {_toml(v)}" for k, v in sorted(values.items())]
    for spec in stages:
        lines += ["", "[[stages]]"] + [f"{k} = {_toml(v)}" for k, v in spec.items() if v is not None]
    files.atomic_write_bytes(("\n".join(lines) + "\n").encode("utf-8"), path)


def _toml(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"Cannot write {value!r} as TOML.")


def write_hparams(trial_path, trial_id, values, params, metrics):
    """Records a trial's settings and scores for TensorBoard's HParams dashboard
    (`tensorboard --logdir TUNE/trials`)."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    writer = tf.summary.create_file_writer(os.path.join(trial_path, "logs", "hparams"))
    with writer.as_default():
        hparams_api.hparams_config(
            hparams=[_hparam(p, hparams_api) for p in params],
            metrics=[hparams_api.Metric(name) for name in metrics])
        hparams_api.hparams({k: _hp_value(v) for k, v in values.items() if not k.startswith("tuner/")},
                            trial_id=trial_id)
        for name, value in metrics.items():
            tf.summary.scalar(name, value, step=0)
    writer.close()


def _hparam(param, api):
    candidates = param.candidates()
    if param.type in ("int", "float") and candidates is None:
        return api.HParam(param.name, api.RealInterval(float(param.min_value), float(param.max_value)))
    if param.type == "int" and candidates:
        return api.HParam(param.name, api.IntInterval(int(param.min_value), int(param.max_value)))
    return api.HParam(param.name, api.Discrete([_hp_value(v) for v in candidates]))


def _hp_value(value):
    return value if isinstance(value, (bool, int, float, str)) else str(value)
