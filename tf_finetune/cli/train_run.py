"""One training run into a run directory: what `train` does, and what each fold of a
cross-validation and each trial of a search does (`tf_finetune.search`).

```
report = train_run(project, config, "runs/x", data_dir=None)   # metrics.json as a dict
```

It resumes a run that was interrupted (same settings), and returns the finished run's report
without training again.
"""

import json
import logging
import os
import shutil
import sys
import time

from tf_finetune.run_dir import RunDir

logger = logging.getLogger("tf_finetune")


def train_run(project, config, run_path, *, data_dir=None, smoke=False, export_dir=None, request=None,
              record=None, quiet=False, head_cache=None, data_fn=None, fit_overrides=None):
    """Trains `config` into `run_path` (resuming it) and writes its report.

    The caller has checked the folder (`RunDir.check_resumable`) and loaded TensorFlow.

    Args:
        project: the `tf_finetune.project.Project`.
        config: the resolved config.
        run_path: the run directory.
        data_dir: `--data-dir`, or None to resolve the data as usual.
        smoke: recorded in `run.json` (the config already holds the smoke settings).
        export_dir: also export the best model there (`request`: the export flags).
        record: more fields for `run.json` (e.g. the trial or fold it belongs to).
        quiet: print no metrics table (the caller summarises several runs).
        head_cache: a dict shared by the runs of one search: a head-only first stage over
            unaugmented data then trains on the frozen backbone's outputs, computed once for
            all of them (`Trainer.fit`).
        data_fn: `() -> Data`, instead of the project's data function.
        fit_overrides: `(data) -> dict` of `Trainer.fit` arguments that replace the usual
            ones (`train`, `val`, `loss`, `metrics`): e.g. a distillation's targets and loss.

    Returns:
        The validation report (`metrics.json`) as a dict.
    """
    import keras

    from tf_finetune.training import Trainer

    run = RunDir(run_path)
    if run.is_finished() and os.path.isfile(run.file("metrics.json")):
        logger.info("%s is finished; using its metrics.", run.path)
        return run.read_metrics()
    keras.backend.clear_session()  # each run builds its model as in a fresh process
    trainer = Trainer(config, run.path)  # before any TensorFlow op: see its strategy
    try:
        return _train(project, config, trainer, data_dir=data_dir, smoke=smoke, export_dir=export_dir,
                      request=request, record=record or {}, quiet=quiet, head_cache=head_cache, data_fn=data_fn,
                      fit_overrides=fit_overrides)
    finally:
        if not trainer.is_chief:  # a worker's own copies of what the chief writes
            shutil.rmtree(trainer.out_dir, ignore_errors=True)


def _train(project, config, trainer, *, data_dir, smoke, export_dir, request, record, quiet, head_cache, data_fn,
           fit_overrides):
    from tf_finetune.cli import commands
    from tf_finetune.training import class_weights
    from tf_finetune.training import stage_teacher
    from tf_finetune.training.strategy import describe_strategy

    # Only the chief of a multi-worker cluster writes to the run directory and the export
    # folder; the others do the same work (collectives need every worker) into `trainer.out`.
    data = data_fn() if data_fn is not None else project.load_data(config, data_dir)
    classes = f", {len(data.class_names)} classes" if data.class_names else ""
    logger.info("Data: %s%s; %s", data.source, classes, data.info)
    model = trainer.build_model(lambda: project.build_model(config, data))
    parts = project.parts(model)
    plan = trainer.plan(model, parts, train_examples=data.info.get("train_examples"))
    fit = {"train": data.train_batches or data.train, "val": data.val, **project.task.compile_args(config)}
    if data.mixing is not None and data.mixing.active:
        fit["mixing"] = data.mixing
    if fit_overrides is not None:
        fit.update(fit_overrides(data))
    weights = class_weights.for_data(config, data, loss=fit.get("loss"))
    if weights is not None:
        fit["class_weight"] = weights
        record = {**record, "class_weight": {name: weights[i] for i, name in enumerate(data.class_names)}}
        logger.info("Class weights (%s): %s.", config.class_weight, class_weights.describe(weights, data.class_names))
    stage_teacher.check_plan(plan, fit)  # before anything is written
    if "mixing" in fit:
        from tf_finetune.training import trainer as trainer_lib

        trainer_lib.check_mixing(fit["mixing"], fit["train"], fit.get("loss"))

    run = trainer.out
    os.makedirs(run.path, exist_ok=True)
    run.write_config(config)
    run.write_record({
        "project": project.name,
        "data_dir": data.source,
        "class_names": list(data.class_names),
        "examples": list(data.examples),
        "data": data.info,
        "smoke": bool(smoke),
        "strategy": describe_strategy(trainer.strategy),
        "command": " ".join(sys.argv),
        "plan": [stage.to_dict() for stage in plan],
        **record,
    })
    logger.info("Run directory: %s (%s)", run.path, describe_strategy(trainer.strategy))
    project.task.write_previews(data, run.path)
    start = time.time()
    cache = {}
    if head_cache is not None and "mixing" not in fit and \
            not getattr(data.augmentation, "is_random", data.augmentation is not None):
        # Unaugmented training data: a frozen backbone's outputs are the same every epoch.
        cache = dict(head_cache=head_cache, data_key=_data_key(config, data))
    best = trainer.fit(model, parts=parts, plan=plan, **fit, **cache)
    seconds = time.time() - start

    # A search's head-only trial is scored on the cached backbone outputs too.
    cached = trainer.cached_predictions({"val": data.val, "test": getattr(data, "test", None)}) if cache else None
    report = project.task.write_report(
        best, data, run.path,
        history=run.read_history(),
        stage_boundaries=run.stage_boundaries(),
        extra={"train_seconds": round(seconds, 1), "data": data.info},
        predictions=cached,
    )
    if not quiet:
        print(f"\nValidation metrics ({report['num_examples']} examples, trained in {seconds:.0f} s):")
        print(project.task.format_report(report))
        print(f"Run directory: {run.path}")
    if export_dir:
        export_dir = export_dir if trainer.is_chief else os.path.join(run.path, "exports")
        path = commands.export_run(project, run, best, config, export_dir, request=request, data=data)
        print(f"Exported: {path}")
    return report


def _data_key(config, data):
    """What fixes the examples a run sees, in their order: a key for cached model outputs."""
    fields = ("seed", "validation_split", "test_split", "folds", "fold", "max_examples_per_class")
    return json.dumps({"source": data.source, "info": data.info, **{f: getattr(config, f) for f in fields}},
                      sort_keys=True, default=str)
