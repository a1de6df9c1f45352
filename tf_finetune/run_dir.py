"""The run directory: its layout, and every read and write of it.

`train` writes one folder per run; `evaluate`, `export`, `predict`, `--init-from`, resume and
the benchmarks read it back. This module is the only place that knows the file names:

```
RUN/config.json              the resolved settings (a project's config dataclass)
RUN/run.json                 the run record: project, data source, classes, examples, command
RUN/state.json               which stages are done, how many epochs each ran, how each ended
RUN/history.csv              one row per epoch: the epoch, its stage, the metrics
RUN/logs/                    TensorBoard
RUN/backup/                  resume state after the last epoch (`tf_finetune.training.backup`)
RUN/checkpoints/best.keras   the best model, written when training ends
RUN/metrics.json, *.png      the validation report (`tf_finetune.tasks`)
RUN/evaluation/              what `evaluate` writes
```

No TensorFlow here, except `load_run`, which loads the best model with Keras.
"""

import csv
import dataclasses
import json
import os

from tf_finetune import files
from tf_finetune.errors import UserError

CONFIG = "config.json"
RECORD = "run.json"
STATE = "state.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
LOGS = "logs"
BACKUP = "backup"
BEST_CHECKPOINT = os.path.join("checkpoints", "best.keras")
EVALUATION = "evaluation"


@dataclasses.dataclass(frozen=True)
class RunDir:
    """A run directory at `path` (absolute); nothing is read or created until asked.

    Attributes:
        path: the folder.
    """

    path: str

    def __post_init__(self):
        object.__setattr__(self, "path", os.path.abspath(os.path.expanduser(str(self.path))))

    def file(self, name):
        """The path of `name` (one of this module's constants) inside the run."""
        return os.path.join(self.path, name)

    @property
    def best_checkpoint(self):
        return self.file(BEST_CHECKPOINT)

    @property
    def backup_dir(self):
        return self.file(BACKUP)

    @property
    def logs_dir(self):
        return self.file(LOGS)

    @property
    def history_file(self):
        return self.file(HISTORY)

    @property
    def evaluation_dir(self):
        return self.file(EVALUATION)

    def exists(self):
        """Whether a run was started here (its record exists)."""
        return os.path.isfile(self.file(RECORD))

    def is_finished(self):
        """Whether training finished here (its best model exists)."""
        return os.path.isfile(self.best_checkpoint)

    # --- Writing ---

    def write_config(self, config):
        """Writes the resolved config (a `tf_finetune.config.TrainConfig`)."""
        files.write_json(config.to_dict(), self.file(CONFIG))

    def write_record(self, record):
        """Writes the run record (`run.json`); it must name the `project`."""
        if "project" not in record:
            raise ValueError(f"A run record names its project. Received keys: {sorted(record)}")
        files.write_json(record, self.file(RECORD))

    def write_state(self, state):
        files.write_json(state, self.file(STATE))

    # --- Reading ---

    def read_record(self, flag="--run-dir"):
        """The run record; `flag` names where the folder came from, for the error line."""
        if not self.exists():
            raise UserError(f"{flag} {self.path} is not a training run (no {RECORD}): pass a folder written by train.")
        return _read_json(self.file(RECORD), "run record")

    def read_config(self, config_class):
        """The run's config as a `config_class` (a project's config dataclass)."""
        from tf_finetune import config as config_lib

        return config_lib.load_run_config(config_class, self.file(CONFIG))

    def read_state(self):
        """The training state (`{}` before the first phase ends)."""
        path = self.file(STATE)
        return _read_json(path, "state") if os.path.isfile(path) else {}

    def read_metrics(self, evaluation=False):
        """The validation report of training (or of the last `evaluate`)."""
        folder = self.evaluation_dir if evaluation else self.path
        return _read_json(os.path.join(folder, METRICS), "metrics")

    def read_history(self):
        """`history.csv` as a Keras-style history dict (the last row wins per epoch).

        After a resume an epoch can appear twice; the later row is the one that counted.
        Metrics are floats; `stage` (the stage's name) stays text.
        """
        if not os.path.isfile(self.history_file):
            return {}
        rows = {}
        with open(self.history_file, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row.get("epoch", "") == "epoch":  # A repeated header after a resume.
                    continue
                rows[int(row["epoch"])] = row
        history = {}
        for epoch in sorted(rows):
            for key, value in rows[epoch].items():
                if key == "epoch" or value in (None, ""):
                    continue
                history.setdefault(key, []).append(value if key == "stage" else float(value))
        return history

    def stage_boundaries(self):
        """`[(epoch index, stage name)]` where each stage after the first started, for plots."""
        return [(stage["first_epoch"], stage["name"]) for stage in self.read_state().get("stages", [])[1:]]

    # --- Checks ---

    def check_project(self, project_name, flag="--run-dir", advice=None):
        """The run record, after checking that the run belongs to `project_name`.

        `advice` is what the error line tells the user to do instead (default: pass a run of
        this project).
        """
        record = self.read_record(flag)
        other = record.get("project")
        if other != project_name:
            advice = advice or (f"pass a {project_name} run directory (python -m projects.{other} "
                                "reads that one)")
            raise UserError(f"{flag} {self.path} holds a {other!r} run, not {project_name!r}: {advice}.")
        return record

    def check_finished(self, project_name, flag="--run-dir"):
        """The run record, after checking that a finished run of `project_name` is here.

        Reads JSON only (no TensorFlow): commands call it before loading TensorFlow, so that a
        wrong folder fails in a fraction of a second.
        """
        record = self.check_project(project_name, flag)
        if not self.is_finished():
            raise UserError(f"{flag} {self.path} has no {BEST_CHECKPOINT} yet: train it (again) first.")
        return record

    def check_resumable(self, project_name, config, flag="--output-dir"):
        """Whether `train` resumes here: True for an earlier run with the same settings,
        False for a new folder; anything else is a `UserError`."""
        files.check_writable_folder(self.path, flag, "the run")
        if not self.exists():
            return False
        self.check_project(project_name, flag, advice="pass a new folder")
        saved = self.read_config(type(config)).to_dict()
        changed = sorted(k for k, v in config.to_dict().items() if saved[k] != v)
        if changed:
            raise UserError(
                f"{flag} {self.path} was trained with other settings ({', '.join(changed)} differ): "
                f"re-run with the same settings to resume, or pass a new {flag}."
            )
        return True


def load_run(run_dir, project_name, config_class, *, flag="--run-dir"):
    """`(config, run record, best Keras model)` of a finished training run of `project_name`.

    `flag` names the argument the folder came from, for the one-line errors.
    """
    import keras

    run = RunDir(run_dir)
    record = run.check_finished(project_name, flag)
    # Without the training's compile state (loss, metrics, optimizer): what is loaded here
    # predicts, and a distilled student's loss is not a Keras built-in.
    return run.read_config(config_class), record, keras.models.load_model(run.best_checkpoint, compile=False)


def read_history(run_dir):
    """`RunDir(run_dir).read_history()`: a Keras-style history dict of `history.csv`."""
    return RunDir(run_dir).read_history()


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable {what} file ({e}): train the run again.") from None
