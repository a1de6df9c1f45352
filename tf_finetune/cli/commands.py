"""The commands: `train`, `lr-find`, `tune`, `distill`, `evaluate`, `export`, `predict`.

Each takes the `Project` and the parsed arguments. Everything that can reject the input runs
before anything is written; TensorFlow is loaded only once the command needs it.
"""

import datetime
import logging
import os

from tf_finetune import config as config_lib
from tf_finetune import files
from tf_finetune.cli.tensorflow_logs import load_tensorflow
from tf_finetune.errors import UserError
from tf_finetune.run_dir import RunDir
from tf_finetune.run_dir import load_run

logger = logging.getLogger("tf_finetune")


def train(project, args):
    config = config_lib.build_config(
        project.config_class,
        file=args.config,
        smoke=args.smoke,
        overrides=config_lib.overrides_from_args(project.config_class, args),
    )
    path = args.output_dir or os.path.join("runs", project.name, datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    request = _checked_export_request(args)
    if config.folds and not config.fold:
        from tf_finetune.search import cross_validation

        cross_validation.train_folds(project, config, path, data_dir=args.data_dir, smoke=args.smoke,
                                            refit=args.refit, export_dir=args.export_dir, request=request,
                                            verbose=args.verbose)
        return
    if args.refit:
        raise UserError("--refit goes with --folds K (and no --fold): it trains on all the folds after them.")
    run = RunDir(path)
    if run.check_resumable(project.name, config):
        logger.info("Resuming the run in %s.", run.path)
    load_tensorflow(args.verbose)
    from tf_finetune.cli.train_run import train_run

    train_run(project, config, run.path, data_dir=args.data_dir, smoke=args.smoke, export_dir=args.export_dir,
              request=request)


def lr_find(project, args):
    """The learning-rate range test over one stage (`tf_finetune.training.lr_finder`)."""
    config = config_lib.build_config(project.config_class, file=args.config, smoke=args.smoke,
                                     overrides=config_lib.overrides_from_args(project.config_class, args))
    if args.steps < 2:
        raise UserError(f"--steps must be at least 2. Received: steps={args.steps}")
    if not 0 < args.start_lr < args.end_lr:
        raise UserError(f"--start-lr and --end-lr must satisfy 0 < start < end. Received: "
                        f"start_lr={args.start_lr}, end_lr={args.end_lr}")
    out = RunDir(args.output_dir or os.path.join(
        "runs", project.name, datetime.datetime.now().strftime("lr_find-%Y%m%d-%H%M%S")))
    if out.exists():
        raise UserError(f"--output-dir {out.path} is a training run directory, which lr-find never writes "
                        "into: pass a new folder.")
    files.check_writable_folder(out.path, "--output-dir", "the range test")
    load_tensorflow(args.verbose)
    from tf_finetune.models import trainable
    from tf_finetune.reporting import plots
    from tf_finetune.training import Trainer
    from tf_finetune.training import class_weights
    from tf_finetune.training import lr_finder
    from tf_finetune.training import optimizers
    from tf_finetune.training import stage_teacher
    from tf_finetune.training import trainer as trainer_lib

    trainer = Trainer(config, out.path)
    data = project.load_data(config, args.data_dir)
    model = trainer.build_model(lambda: project.build_model(config, data))
    parts = project.parts(model)
    plan = trainer.plan(model, parts, train_examples=data.info.get("train_examples"))
    if not 1 <= args.stage <= len(plan):
        raise UserError(f"--stage {args.stage}: the plan has {len(plan)} stage(s) "
                        f"({', '.join(s.name for s in plan)}): pass 1 to {len(plan)}.")
    stage = plan[args.stage - 1]
    as_built = trainable.capture(model)
    for earlier in plan[: args.stage]:  # the structure (adapters) of the stages before it
        described = trainable.apply_stage(model, earlier, parts, as_built)
    with trainer.strategy.scope():
        optimizer = optimizers.make_optimizer(  # the stage's per-variable rates (layer decay, LoRA+) too
            stage.optimizer, args.start_lr, stage.weight_decay,
            rate_scales=optimizers.stage_rate_scales(model, stage.layer_decay, stage.loraplus_lr_ratio))
    compile_args = project.task.compile_args(config)
    stage_teacher.check_plan([stage], compile_args)
    weights = class_weights.for_data(config, data, loss=compile_args.get("loss"))
    train = data.train_batches or data.train
    mixing = data.mixing if data.mixing is not None and data.mixing.active else None
    if mixing is not None:
        trainer_lib.check_mixing(mixing, train, compile_args.get("loss"))
    one_hot = trainer_lib.one_hot_labels(config, compile_args.get("loss"), mixing)
    if one_hot:  # the labels (and mixes) the stage trains on
        train = trainer_lib.classification_train(train, model.output_shape[-1], mixing)
        compile_args = {**compile_args, "loss": trainer.default_loss(one_hot=True)}
    batches = train(config.seed, stage.batch_size) if callable(train) else train
    swept = model
    if stage.distill_alpha > 0:  # the stage's loss: the labels' and its teacher's (the model as it starts)
        with trainer.strategy.scope():
            swept, loss, metrics = stage_teacher.taught(model, stage, trainer.default_loss(one_hot=one_hot),
                                                        one_hot=one_hot)
        swept.teacher.set_weights(model.get_weights())
        compile_args = {"loss": loss, "metrics": metrics}
    trainer.compile(swept, optimizer, **compile_args)
    logger.info("Range test over stage %d (%s): %s; %s from %g to %g over at most %d steps.", args.stage,
                stage.name, described, stage.optimizer, args.start_lr, args.end_lr, args.steps)
    try:
        result = lr_finder.run(swept, iter(batches.repeat()), set_rate=lambda rate: setattr(optimizer, "learning_rate", rate),
                               steps=args.steps, start=args.start_lr, end=args.end_lr, class_weight=weights)
    except ValueError as e:
        raise UserError(f"lr-find: {e}") from None
    rows = ["step,learning_rate,loss,smoothed_loss"] + [
        f"{i},{rate!r},{loss!r},{smooth!r}" for i, (rate, loss, smooth)
        in enumerate(zip(result.rates, result.losses, result.smoothed + [float("nan")] * len(result.rates)))]
    os.makedirs(out.path, exist_ok=True)
    files.atomic_write_bytes(("\n".join(rows) + "\n").encode("utf-8"), out.file("lr_find.csv"))
    plots.plot_lr_find(result, out.file("lr_find.png"))
    ended = (f"the loss diverged at {result.diverged_at:.3g}" if result.diverged_at
             else f"the sweep reached {result.rates[-1]:.3g}")
    print(f"Suggested learning rate: {result.suggestion:.3g} ({result.how_chosen()}; {len(result.rates)} steps, "
          f"{ended}).")
    print(f"Written: {out.file('lr_find.png')}, {out.file('lr_find.csv')}")


def tune(project, args):
    """A hyperparameter search (`tf_finetune.search.tuner`)."""
    from tf_finetune.search import tuner

    if not args.tune_dir:
        args.tune_dir = os.path.join("runs", project.name, datetime.datetime.now().strftime("tune-%Y%m%d-%H%M%S"))
    request = _checked_export_request(args)
    search = tuner.prepare(project, args)
    tuner.run(search, data_dir=args.data_dir, smoke=args.smoke, export_dir=args.export_dir, request=request,
              verbose=args.verbose)


def _load_run(project, run_dir, flag="--run-dir"):
    """`(config, record, best model)` of a run of `project`, its custom layers registered first."""
    project.import_model_code()
    return load_run(run_dir, project.name, project.config_class, flag=flag)


def evaluate(project, args):
    RunDir(args.run_dir).check_finished(project.name)  # before TensorFlow: a wrong folder fails fast
    load_tensorflow(args.verbose)
    config, record, model = _load_run(project, args.run_dir)
    data = project.load_data(config, args.data_dir or record["data_dir"])
    if list(data.class_names) != record["class_names"]:
        raise UserError(
            f"--data-dir classes {list(data.class_names)} differ from the run's "
            f"{record['class_names']}: evaluate on data with the same classes."
        )
    out_dir = RunDir(args.run_dir).evaluation_dir
    report = project.task.write_report(model, data, out_dir, extra={"data_dir": data.source})
    print(f"Validation metrics on {data.source} ({report['num_examples']} examples):")
    print(project.task.format_report(report))
    print(f"Written: {os.path.join(out_dir, 'metrics.json')}")


def _checked_export_request(args):
    """The checked export request of `train`/`tune --export-dir`, or None without one."""
    if not args.export_dir:
        return None
    files.check_writable_folder(args.export_dir, "--export-dir", "the versions")
    request = export_request(args)
    request.check()
    return request


def export_request(args):
    """The `serving.exporter.ExportRequest` of the export flags."""
    from tf_finetune.serving.exporter import ExportRequest

    return ExportRequest(formats=tuple(dict.fromkeys(args.format)), quantize=tuple(dict.fromkeys(args.quantize)),
                         calibration_examples=args.calibration_examples, int8_io=args.int8_io,
                         max_accuracy_drop=args.max_accuracy_drop)


def export(project, args):
    request = export_request(args)
    request.check()
    files.check_writable_folder(args.export_dir, "--export-dir", "the versions")
    RunDir(args.run_dir).check_finished(project.name)
    load_tensorflow(args.verbose)
    config, record, model = _load_run(project, args.run_dir)
    path = export_run(project, RunDir(args.run_dir), model, config, args.export_dir, record, request=request,
                   data_dir=args.data_dir)
    print(f"Exported: {path}")


def export_run(project, run, model, config, export_dir, record=None, *, request=None, data=None, data_dir=None):
    from tf_finetune.models import lora

    record = record or run.read_record()
    model = lora.merged(model)  # an ordinary model: low-rank adapters folded into the kernels
    try:
        examples = project.read_inputs(record.get("examples", []))
    except UserError:
        examples = []
    if not examples:
        logger.info("The run's example inputs are gone; verifying the export on synthetic inputs.")
        examples = project.synthetic_inputs(config)
    if request is None or request.formats == ("saved_model",):
        return project.task.export(model, preprocess=project.preprocess(config), record=record,
                                   export_dir=export_dir, examples=examples)
    from tf_finetune.serving import exporter

    if project.tensor_model is None:
        raise UserError(f"--format {' '.join(request.tensor_formats)}: {project.name} exports only a SavedModel "
                        "(its model cannot be split into tensors in, probabilities out): use --format saved_model.")
    if data is None:
        logger.info("Loading the run's data: LiteRT and ONNX files are checked on its validation split.")
        data = project.load_data(config, data_dir or record["data_dir"])
        if list(data.class_names) != record["class_names"]:
            raise UserError(f"--data-dir classes {list(data.class_names)} differ from the run's "
                            f"{record['class_names']}: pass the data the run was trained on.")
    path, _ = exporter.export(model, project=project, config=config, record=record, export_dir=export_dir,
                              request=request, examples=examples, data=data)
    return path


def predict(project, args):
    from tf_finetune.serving import versions

    limit = {} if args.max_image_pixels is None else {"max_pixels": args.max_image_pixels}
    if limit and args.max_image_pixels < 0:
        raise UserError(f"--max-image-pixels must be 0 (no limit) or more. Received: {args.max_image_pixels}")
    # What --model is, before TensorFlow loads: a wrong path fails fast.
    found = versions.find_export(args.model)
    if not found:
        if not RunDir(args.model).exists():
            raise UserError(
                f"--model {os.path.abspath(args.model)} is not a run directory, a SavedModel, an export "
                "version folder, a folder of numbered versions, or a .tflite or .onnx file: pass one of these."
            )
        RunDir(args.model).check_finished(project.name, "--model")
    load_tensorflow(args.verbose)
    import tensorflow as tf

    from tf_finetune.serving import saved_model

    raw = project.read_inputs(args.inputs, **limit)
    if found and found[0] == "saved_model":
        outputs = saved_model.serve_saved_model(found[1], raw)
    elif found:
        outputs = _predict_tensors(found[1], raw)
    else:
        config, record, model = _load_run(project, args.model, flag="--model")
        serve = project.task.serving_fn(model, project.preprocess(config), record)
        outputs = {k: v.numpy() for k, v in serve(tf.constant(list(raw))).items()}
    # An input may stand for several (e.g. @FILE of texts); then name each by its value.
    names = list(args.inputs) if len(raw) == len(args.inputs) else [str(r) for r in raw]
    for line in project.task.format_predictions(names, outputs, as_json=args.json):
        print(line)


def _predict_tensors(path, raw):
    """Predictions of a LiteRT or ONNX export through its own client (pre-processing from
    preprocessing.json, as any client of the export folder does it)."""
    import numpy as np

    from tf_finetune.serving import client

    try:
        predictions = client.Client(path).predict(raw)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"--model {os.path.abspath(path)}: {e}") from None
    return {"labels": np.array([label for label, _, _ in predictions]),
            "probabilities": np.stack([probs for _, _, probs in predictions])}


def distill(project, args):
    """Knowledge distillation into this project's model (`tf_finetune.cli.distill`)."""
    from tf_finetune.cli.distill import distill as run

    return run(project, args)


COMMANDS = {"train": train, "lr-find": lr_find, "tune": tune, "distill": distill, "evaluate": evaluate,
            "export": export, "predict": predict}
