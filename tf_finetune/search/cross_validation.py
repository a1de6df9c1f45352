"""k-fold cross-validation: one run per fold, a summary, and optionally a refit on all the data.

```
RUN/fold_1/ ... RUN/fold_K/    ordinary run directories (evaluate, export, predict take them)
RUN/refit/                     --refit: the same settings trained on every fold
RUN/cross_validation.json      each fold's metrics, and their mean and standard deviation
RUN/cross_validation.md        the same as a table
```

Folds are stratified, seeded and grouped as the splits are (`tf_finetune.data.splits.k_folds`).
Re-running the same command resumes: finished folds are read back, an interrupted one continues
from its last epoch.
"""

import dataclasses
import logging
import math
import os

from tf_finetune import files
from tf_finetune.errors import UserError
from tf_finetune.run_dir import RunDir

logger = logging.getLogger("tf_finetune")
SUMMARY = "cross_validation"
# Numbers in metrics.json that describe the run rather than score it.
NOT_SCORES = ("num_examples", "train_seconds")


def fold_configs(config):
    """`[(folder name, config)]`: each fold's config (`fold` set), in fold order."""
    return [(f"fold_{i}", dataclasses.replace(config, fold=i)) for i in range(1, config.folds + 1)]


def refit_config(config):
    """The refit's config: every fold trains; the last epoch is kept, since its validation data
    (fold 1, or the data's own validation file) is no held-out estimate to choose on."""
    return dataclasses.replace(config, fold=0, checkpoint="last", early_stopping_patience=0)


def check_folders(project, config, path, refit, flag="--output-dir"):
    """Rejects a folder that cannot hold this cross-validation, before anything is written;
    `flag` names where the folder came from."""
    files.check_writable_folder(path, flag, "the folds")
    if RunDir(path).exists():
        raise UserError(f"{flag} {os.path.abspath(path)} is a single training run: pass a new folder "
                        "for the cross-validation.")
    runs = fold_configs(config) + ([("refit", refit_config(config))] if refit else [])
    for name, fold_config in runs:
        RunDir(os.path.join(path, name)).check_resumable(project.name, fold_config, flag=flag)


def train_folds(project, config, path, *, data_dir=None, smoke=False, refit=False, export_dir=None, request=None,
                verbose=False, record=None, quiet=False, head_cache=None, flag="--output-dir"):
    """Trains every fold of `config` (`config.folds` > 0) into `path/fold_<i>`, writes the
    summary, and with `refit` trains on all the folds into `path/refit` (exported to
    `export_dir` when given). Returns the summary dict."""
    from tf_finetune.cli.tensorflow_logs import load_tensorflow

    if export_dir and not refit:
        raise UserError("--export-dir with --folds exports the refit on all the data: add --refit (each "
                        "fold's model saw only part of it; export one with export --run-dir RUN/fold_N).")
    check_folders(project, config, path, refit, flag)
    load_tensorflow(verbose)
    from tf_finetune.cli.train_run import train_run

    reports = []
    for i, (name, fold_config) in enumerate(fold_configs(config), 1):
        logger.info("Fold %d of %d: %s", i, config.folds, os.path.join(path, name))
        reports.append(train_run(project, fold_config, os.path.join(path, name), data_dir=data_dir, smoke=smoke,
                                 record={"cross_validation": {"fold": i, "folds": config.folds}, **(record or {})},
                                 quiet=True, head_cache=head_cache))
    summary = summarize(reports)
    summary.update(folds=config.folds, runs=[name for name, _ in fold_configs(config)])
    if refit:
        logger.info("Refit on all %d folds: %s", config.folds, os.path.join(path, "refit"))
        refit_report = train_run(project, refit_config(config), os.path.join(path, "refit"), data_dir=data_dir,
                                 smoke=smoke, export_dir=export_dir, request=request,
                                 record={"cross_validation": {"fold": 0, "folds": config.folds}}, quiet=True)
        summary["refit"] = {"run": "refit", "split": refit_report.get("data", {}).get("split", ""),
                            **{k: v for k, v in refit_report.items() if _is_score(k, v)},
                            **({"test": _scores(refit_report["test"])} if "test" in refit_report else {})}
    write_summary(summary, path)
    if not quiet:
        print(f"\n{config.folds}-fold cross-validation ({summary['validation']['accuracy']['n']} folds done):")
        print(format_summary(summary))
        print(f"Written: {os.path.join(os.path.abspath(path), SUMMARY + '.json')}")
    return summary


def summarize(reports):
    """Mean, standard deviation (n - 1), min and max of each score over the reports (and of
    their held-out test scores, when they have them)."""
    summary = {"validation": _stats([_scores(r) for r in reports]),
               "per_fold": [_scores(r) for r in reports]}
    if all("test" in r for r in reports) and reports:
        summary["test"] = _stats([_scores(r["test"]) for r in reports])
    return summary


def _is_score(key, value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and key not in NOT_SCORES


def _scores(report):
    return {k: v for k, v in report.items() if _is_score(k, v)}


def _stats(rows):
    out = {}
    for key in rows[0] if rows else ():
        values = [row[key] for row in rows if key in row]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        out[key] = {"mean": mean, "std": std, "min": min(values), "max": max(values), "n": len(values)}
    return out


def format_summary(summary):
    """The summary as a markdown table: one row per fold, then mean +- std."""
    keys = list(summary["validation"])
    lines = ["| fold | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for i, row in enumerate(summary["per_fold"], 1):
        lines.append(f"| {i} | " + " | ".join(f"{row.get(k, float('nan')):.4f}" for k in keys) + " |")
    stats = summary["validation"]
    lines.append("| mean +- std | " + " | ".join(f"{stats[k]['mean']:.4f} +- {stats[k]['std']:.4f}"
                                                  for k in keys) + " |")
    if "test" in summary:
        test = summary["test"]
        lines.append("| test, mean +- std | " + " | ".join(
            f"{test[k]['mean']:.4f} +- {test[k]['std']:.4f}" if k in test else "" for k in keys) + " |")
    if "refit" in summary:
        refit = summary["refit"]
        if "also trained on" in refit.get("split", ""):
            how = "its validation data was trained on, so the folds' mean is the estimate"
        else:
            how = f"validation accuracy {refit.get('accuracy', float('nan')):.4f} ({refit.get('split')})"
        test = refit.get("test", {})
        held_out = f"; held-out test accuracy {test['accuracy']:.4f}" if "accuracy" in test else ""
        lines.append(f"\nRefit on all the folds: {how}{held_out}.")
    return "\n".join(lines)


def write_summary(summary, path):
    """Writes `cross_validation.json` and `cross_validation.md` into `path`."""
    files.write_json(summary, os.path.join(path, SUMMARY + ".json"))
    files.atomic_write_bytes((format_summary(summary) + "\n").encode("utf-8"), os.path.join(path, SUMMARY + ".md"))
