"""The command line every project shares: the parser, logging, and exit statuses.

```
python -m projects.<name> train    [--data-dir DIR] [--output-dir RUN] [--epochs N] [--batch-size N]
                                   [--config FILE] [--export-dir DIR] [--smoke] [settings...]
python -m projects.<name> lr-find  [--data-dir DIR] [--config FILE] [--stage N] [--steps N] [--output-dir DIR]
python -m projects.<name> tune     --space FILE [--tuner grid|random|bayesian|hyperband] [--max-trials N]
                                   [--objective NAME[:min|max]] [--tune-dir DIR] [--folds K] [settings...]
python -m projects.<name> distill  --teacher RUN_OR_SAVEDMODEL [--temperature T] [--alpha A]
                                   [--augment-copies N] [train's flags...]   (text classifiers)
python -m projects.<name> evaluate --run-dir RUN [--data-dir DIR]
python -m projects.<name> export   --run-dir RUN [--export-dir DIR] [--format saved_model litert onnx]
                                   [--quantize none float16 dynamic int8] [--data-dir DIR]
python -m projects.<name> predict  --model RUN_SAVEDMODEL_TFLITE_OR_ONNX INPUT...
```

Problems a user can fix print one `error: ...` line and exit with status 2. Nothing here
imports TensorFlow: `--help` and bad flags are answered at once, and each command loads
TensorFlow when it needs it (`tensorflow_logs.load_tensorflow`).
"""

import argparse
import logging
import os
import sys

from tf_finetune import config as config_lib
from tf_finetune.cli import commands
from tf_finetune.errors import UserError

OUR_LOGGERS = ("tf_finetune", "projects")


def main(project, argv=None):
    """Runs the CLI for `project` (a `tf_finetune.project.Project`); returns the exit status."""
    args = build_parser(project).parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return commands.COMMANDS[args.command](project, args) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; re-run the same command to resume.", file=sys.stderr)
        return 130


def build_parser(project):
    parser = argparse.ArgumentParser(prog=f"python -m projects.{project.name}", description=project.description)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="Also show TensorFlow's start-up and INFO logs, and debug lines.")

    train = subparsers.add_parser("train", parents=[common], help="Train (fine-tune) a model into a run directory.")
    _add_run_flags(train, project, "<timestamp>")
    train.add_argument("--refit", action="store_true",
                       help="With --folds K: after the K fold runs, train the same settings on all the data into "
                            "RUN/refit (the model to export; the folds' mean is its estimate).")
    _add_export_flags(train)
    config_lib.add_config_flags(train, project.config_class)

    lr_find = subparsers.add_parser(
        "lr-find", parents=[common],
        help="Learning-rate range test over one stage of the plan: writes lr_find.png and lr_find.csv and "
             "suggests a rate; no run directory is touched.")
    lr_find.add_argument("--data-dir", help="Data folder (default: $TF_FINETUNE_DATA/<dataset>, else the online source).")
    lr_find.add_argument("--output-dir", help=f"Folder for lr_find.png and lr_find.csv (default: runs/{project.name}/lr_find-<timestamp>); not a run directory.")
    lr_find.add_argument("--config", help="JSON or TOML file of settings, as for train.")
    lr_find.add_argument("--smoke", action="store_true", help="Smoke-sized data and model, as for train.")
    lr_find.add_argument("--stage", type=int, default=1, help="Which stage of the plan to sweep, from 1 (default: %(default)s).")
    lr_find.add_argument("--steps", type=int, default=100, help="Batches in the sweep, at most (default: %(default)s).")
    lr_find.add_argument("--start-lr", type=float, default=1e-7, help="First learning rate (default: %(default)s).")
    lr_find.add_argument("--end-lr", type=float, default=10.0, help="Last learning rate (default: %(default)s).")
    config_lib.add_config_flags(lr_find, project.config_class)

    tune = subparsers.add_parser(
        "tune", parents=[common],
        help="Hyperparameter search (KerasTuner): each trial a full training run in TUNE_DIR/trials/<id>; "
             "writes results.md/.csv and best.toml. Re-running the same command resumes.")
    tune.add_argument("--space", required=True,
                      help="TOML or JSON file of searched fields (config fields or stages.N.FIELD) in KerasTuner's "
                           "vocabulary: type = choice/int/float/boolean/fixed, values, min_value, max_value, step, "
                           "sampling (linear/log/reverse_log), parent_name/parent_values. See docs/search.md.")
    tune.add_argument("--tuner", default="bayesian", choices=["grid", "random", "bayesian", "hyperband"],
                      help="Search algorithm (default: %(default)s); hyperband budgets epochs of the plan.")
    tune.add_argument("--max-trials", type=int, default=None,
                      help="Trials to run (default: 10; grid: every combination; hyperband: its own count).")
    tune.add_argument("--objective", default=None,
                      help="Metric to optimise, NAME[:min|max]: a metrics.json score on validation data "
                           "(accuracy, macro_f1, ...) or a history column (val_loss, val_accuracy) "
                           "(default: the project's first, accuracy for classifiers).")
    tune.add_argument("--tune-dir", default=None,
                      help=f"Folder of the search (default: runs/{project.name}/tune-<timestamp>). Re-running with the "
                           "same one resumes; several processes share one with KERASTUNER_TUNER_ID, "
                           "KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set.")
    tune.add_argument("--data-dir", help="Data folder (default: $TF_FINETUNE_DATA/<dataset>, else the online source).")
    tune.add_argument("--config", help="JSON or TOML file of the settings every trial starts from.")
    tune.add_argument("--export-dir", help="Also export the best trial's model as a new numbered version here.")
    tune.add_argument("--smoke", action="store_true", help="Smoke-sized trials, as train --smoke.")
    _add_export_flags(tune)
    config_lib.add_config_flags(tune, project.config_class)

    if project.from_tables is not None:  # a text classifier can be a student
        _add_distill_parser(subparsers, common, project)

    evaluate = subparsers.add_parser("evaluate", parents=[common], help="Print per-class metrics of a run's best model.")
    evaluate.add_argument("--run-dir", required=True, help="A run directory written by train.")
    evaluate.add_argument("--data-dir", help="Evaluate on the validation split of this data instead of the run's.")

    export = subparsers.add_parser(
        "export", parents=[common],
        help="Export a run's best model into a new numbered version folder: a SavedModel that serves raw "
             "inputs, and LiteRT and ONNX files, each verified against Keras on the validation set.")
    export.add_argument("--run-dir", required=True, help="A run directory written by train.")
    export.add_argument("--export-dir", default=os.path.join("saved_models", project.name),
                        help="Folder of numbered versions (default: %(default)s).")
    export.add_argument("--data-dir", help="The run's data, if it moved (LiteRT and ONNX are checked on its "
                                           "validation split, int8 calibrated on its training split).")
    _add_export_flags(export)

    predict = subparsers.add_parser("predict", parents=[common], help="Predict (classify, translate) with a run or an exported model.")
    predict.add_argument("--model", required=True,
                         help="A run directory, a SavedModel, a folder of versions (latest used), an export version "
                              "folder, or a .tflite or .onnx file in one.")
    predict.add_argument("--json", action="store_true", help="Print one JSON object per input.")
    predict.add_argument("--max-image-pixels", type=int, default=None,
                         help="Image inputs: refuse an image whose header declares more pixels than this, before "
                              "decoding (default 40000000; 0 = no limit).")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="Inputs: image files, or texts (@FILE: one text per line).")
    return parser


def _add_distill_parser(subparsers, common, project):
    from tf_finetune.distillation.settings import DistillSettings

    distill = subparsers.add_parser(
        "distill", parents=[common],
        help="Train this project's model (the student) on a finished teacher's outputs (knowledge distillation): "
             "the training texts and augmented copies, labelled once by the teacher (cached). Text classifiers.")
    _add_run_flags(distill, project, "distill-<timestamp>")
    _add_export_flags(distill)
    config_lib.add_config_flags(distill, DistillSettings, title="distillation")
    config_lib.add_config_flags(distill, project.config_class)


def _add_run_flags(parser, project, default_name):
    """The flags of a command that trains a run directory (train, distill)."""
    parser.add_argument("--data-dir", help="Data folder (default: $TF_FINETUNE_DATA/<dataset>, else the online source).")
    parser.add_argument("--output-dir", help=f"Run directory (default: runs/{project.name}/{default_name}). "
                                             "Re-running with the same one resumes.")
    parser.add_argument("--config", help="JSON or TOML file of settings (keys as below, with underscores).")
    parser.add_argument("--export-dir", help=f"Also export a new numbered SavedModel version here (e.g. "
                                             f"saved_models/{project.name}).")
    parser.add_argument("--smoke", action="store_true",
                        help="Shrink the run to seconds: a few examples per class, one or a few epochs per phase.")


def _add_export_flags(parser):
    parser.add_argument("--format", nargs="+", default=["saved_model"], metavar="FORMAT",
                        choices=["saved_model", "litert", "onnx"],
                        help="Formats to export, several allowed: saved_model (raw inputs, TF Serving), litert, "
                             "onnx (default: %(default)s).")
    parser.add_argument("--quantize", nargs="+", default=["none"], metavar="Q",
                        choices=["none", "float16", "dynamic", "int8"],
                        help="LiteRT variants, several allowed: none (float32), float16, dynamic (int8 weights), "
                             "int8 (full integer, calibrated) (default: %(default)s).")
    parser.add_argument("--calibration-examples", type=int, default=300,
                        help="Training examples that calibrate int8 (default: %(default)s).")
    parser.add_argument("--int8-io", action="store_true",
                        help="int8 inputs and outputs for --quantize int8 (default: float in and out).")
    parser.add_argument("--max-accuracy-drop", type=float, default=1.0,
                        help="Refuse a quantized LiteRT file whose validation accuracy is more than this many "
                             "points below the Keras model's (default: %(default)s).")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (it may be swapped, e.g. by pytest)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
        self.verbose = False
        # Our own INFO lines, and warnings from everyone; TF's INFO chatter stays hidden.
        self.addFilter(lambda r: self.verbose or r.levelno >= logging.WARNING
                       or r.name.split(".")[0] in OUR_LOGGERS)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _setup_logging(verbose=False):
    """Shows progress lines on stderr; installed once, loggers keep propagating."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        root.addHandler(handler)
    handler.verbose = verbose
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
