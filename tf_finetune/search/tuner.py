"""`tune`: a hyperparameter search with KerasTuner as the engine, each trial a full run.

KerasTuner's oracle (grid, random, Bayesian optimisation, Hyperband) proposes the settings;
each trial is one run of the shared trainer (or one cross-validation, with `--folds`) in its
own run directory, so any trial can be evaluated, exported or resumed like a run:

```
TUNE/search.json              what was asked (project, space, tuner, objective, base config)
TUNE/oracle/                  KerasTuner's state (oracle.json, trial_*/trial.json)
TUNE/trials/<id>/             each trial's run directory (fold_<i>/ inside with --folds)
TUNE/results.csv, results.md  the trials, best first
TUNE/best.toml                the best trial's settings, for train --config
```

Resume: re-running the same command reloads the oracle (KerasTuner) and its running trials
are retried under the same id; as their run directories resume from their last epoch backup
(`tf_finetune.training.backup`), an interrupted trial continues where it stopped, and finished
trials are not run again. Hyperband's budget is `epoch_budget`: a trial runs the first N epochs
of the whole plan, exactly as the whole plan would.

Distributed: start the same command on every machine with `KERASTUNER_TUNER_ID` (`chief` for
the one that holds the oracle, any other name for a worker), `KERASTUNER_ORACLE_IP` and
`KERASTUNER_ORACLE_PORT` set, and `--tune-dir` on a file system they share. A worker that is
restarted with its id takes its trial back and resumes it.
"""

import dataclasses
import json
import logging
import os
import shutil

from tf_finetune import config as config_lib
from tf_finetune import files
from tf_finetune.errors import UserError
from tf_finetune import run_dir as run_dir_lib
from tf_finetune.run_dir import RunDir
from tf_finetune.search import cross_validation
from tf_finetune.search import results as results_lib
from tf_finetune.search import space as space_lib

logger = logging.getLogger("tf_finetune")
TUNERS = ("grid", "random", "bayesian", "hyperband")
SEARCH = "search.json"
ORACLE = "oracle"
TRIALS = "trials"


@dataclasses.dataclass(frozen=True)
class Search:
    """A checked search request.

    Attributes:
        project: the `Project`.
        config: the base config every trial starts from.
        params: the searched `space.Param`s.
        tuner: one of `TUNERS`.
        objective, direction: the metric and "min"/"max".
        max_trials: trials to run (Hyperband: a cap on its own count, None = its own).
        path: the tune directory.
        max_epochs: Hyperband's largest budget (the plan's epochs); None for the others.
    """

    project: object
    config: object
    params: tuple
    tuner: str
    objective: str
    direction: str
    max_trials: int
    path: str
    max_epochs: int = None

    def record(self):
        return {"project": self.project.name, "tuner": self.tuner, "objective": self.objective,
                "direction": self.direction, "max_trials": self.max_trials, "max_epochs": self.max_epochs,
                "space": [p.to_dict() for p in self.params], "config": self.config.to_dict()}

    def trial_path(self, trial_id):
        return os.path.join(self.path, TRIALS, str(trial_id))


def parse_objective(text, task):
    """`(name, direction)` of `--objective NAME[:min|max]`, checked against what the task records."""
    name, _, direction = (text or next(iter(task.objectives))).partition(":")
    if name.startswith("test"):
        raise UserError(f"--objective {text}: a search never chooses on the test split; pick a validation "
                        f"metric ({', '.join(task.objectives)}).")
    if name not in task.objectives:
        raise UserError(f"--objective {text}: runs do not record {name!r}; pick one of "
                        f"{', '.join(task.objectives)} (optionally :min or :max).")
    direction = direction or task.objectives[name]
    if direction not in ("min", "max"):
        raise UserError(f"--objective {text}: the direction after ':' must be min or max.")
    return name, direction


def plan_epochs(config):
    """The whole plan's epochs (Hyperband's largest budget), without building a model."""
    from tf_finetune.training import stages

    try:
        return sum(stage.epochs for stage in stages.expand(config))
    except (UserError, TypeError, ValueError):
        raise UserError("--tuner hyperband needs the plan's length in epochs, which depends on the model here "
                        "(blocks = \"all\"): give the stages' blocks as numbers, or use --tuner bayesian.") from None


def prepare(project, args):
    """Reads and checks everything `tune` was given; returns a `Search`. Writes nothing."""
    config = config_lib.build_config(project.config_class, file=args.config, smoke=args.smoke,
                                     overrides=config_lib.overrides_from_args(project.config_class, args))
    params = tuple(space_lib.read_space(args.space, project.config_class))
    space_lib.check_space(params, config)
    objective, direction = parse_objective(args.objective, project.task)
    if args.max_trials is not None and args.max_trials < 1:
        raise UserError(f"--max-trials must be at least 1. Received: {args.max_trials}")
    max_trials, max_epochs = args.max_trials, None
    if args.tuner == "grid":
        size = space_lib.grid_size(params)
        if size is None:
            continuous = next(p.name for p in params if p.candidates() is None)
            raise UserError(f"--tuner grid: {continuous} is a continuous range; give it a step or values, or use "
                            "--tuner random or bayesian.")
        if max_trials is not None and size > max_trials:
            raise UserError(f"--tuner grid: the space has {size} combinations, more than --max-trials "
                            f"{max_trials}: raise --max-trials to {size} or narrow the space.")
        max_trials = size
    elif args.tuner == "hyperband":
        max_epochs = plan_epochs(config)
        if max_epochs < 2:
            raise UserError(f"--tuner hyperband needs a plan of at least 2 epochs to budget; it has {max_epochs}.")
    else:
        max_trials = max_trials or 10
    path = os.path.abspath(args.tune_dir)
    files.check_writable_folder(path, "--tune-dir", "the search")
    search = Search(project, config, params, args.tuner, objective, direction, max_trials, path, max_epochs)
    _check_tune_dir(search)
    return search


def _check_tune_dir(search):
    """Rejects a `--tune-dir` that holds a run, another project's search or another search."""
    flag = f"--tune-dir {search.path}"
    if RunDir(search.path).exists():
        raise UserError(f"{flag} is a training run directory: pass a new folder for the search.")
    path = os.path.join(search.path, SEARCH)
    if not os.path.isfile(path):
        if os.path.isdir(search.path) and os.listdir(search.path):
            raise UserError(f"{flag} is not empty and holds no search: pass a new or empty folder.")
        return
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    if saved.get("project") != search.project.name:
        raise UserError(f"{flag} holds a {saved.get('project')!r} search, not {search.project.name!r}: pass a new "
                        "--tune-dir.")
    wanted = json.loads(json.dumps(search.record()))
    # --max-trials may change: a finished search goes on with more trials (KerasTuner's oracle
    # keeps no trial count in its state).
    changed = sorted(k for k in wanted if saved.get(k) != wanted[k] and k != "max_trials")
    if changed:
        raise UserError(f"{flag} holds a search with other settings ({', '.join(changed)} differ): re-run the same "
                        "command to resume it (--max-trials may change), or pass a new --tune-dir.")


def run(search, *, data_dir=None, smoke=False, export_dir=None, request=None, verbose=False):
    """Runs (or resumes) the search; returns the sorted `results.TrialRow`s."""
    from tf_finetune.cli.tensorflow_logs import load_tensorflow

    os.makedirs(search.path, exist_ok=True)
    files.write_json(search.record(), os.path.join(search.path, SEARCH))
    load_tensorflow(verbose)
    import keras_tuner

    tuner = _make_tuner(search, keras_tuner, data_dir=data_dir, smoke=smoke)
    remote = os.environ.get("KERASTUNER_ORACLE_IP") and os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief"
    logger.info("Search in %s: %s over %s, %s of %s; trials in %s.", search.path, search.tuner,
                ", ".join(p.name for p in search.params), search.direction, search.objective,
                os.path.join(search.path, TRIALS))
    tuner.search()
    if remote:  # a worker: the chief writes the results
        logger.info("Worker %s: no trials left.", os.environ.get("KERASTUNER_TUNER_ID"))
        return []
    rows = write_results(search, tuner.oracle)
    best = next((r for r in rows if r.score is not None), None)
    if best is None:
        raise UserError(f"No trial of the search in {search.path} finished: see the trials' messages in "
                        f"{os.path.join(search.path, ORACLE)}.")
    if export_dir:
        _export_best(search, best, export_dir, request)
    return rows


def _make_tuner(search, kt, *, data_dir, smoke):
    head_cache = {}  # the frozen backbone's outputs, shared by this process's trials
    objective = kt.Objective(search.objective, search.direction)
    common = dict(objective=objective, seed=search.config.seed, max_retries_per_trial=0,
                  max_consecutive_failed_trials=3)
    start, why = space_lib.starting_values(search.params, search.config)
    if start is None:
        logger.info("The search starts at random: the base config's %s.", why)
        params = search.params
    else:  # KerasTuner's defaults are the first trial's values
        params = [dataclasses.replace(p, default=start[p.name]) if p.name in start else p for p in search.params]
        logger.info("The first trial takes the base config's settings (or the space's defaults): %s.",
                    ", ".join(f"{k}={results_lib.format_value(v)}" for k, v in start.items()))
    if search.tuner == "grid":  # KerasTuner's grid starts from the defaults itself
        oracle = kt.oracles.GridSearchOracle(max_trials=search.max_trials, **common)
    elif search.tuner == "hyperband":
        oracle = _starting_from_defaults(kt.oracles.HyperbandOracle, kt, start)(max_epochs=search.max_epochs,
                                                                                factor=3, **common)
        oracle.max_trials = search.max_trials
    else:
        oracle_class = {"random": kt.oracles.RandomSearchOracle,
                        "bayesian": kt.oracles.BayesianOptimizationOracle}[search.tuner]
        oracle = _starting_from_defaults(oracle_class, kt, start)(max_trials=search.max_trials, **common)

    class SpaceModel(kt.HyperModel):
        def build(self, hp):
            for param in params:
                param.declare(hp)

    class TrialTuner(kt.engine.base_tuner.BaseTuner):
        """Runs each trial through the shared trainer in `TUNE/trials/<id>`."""

        def run_trial(self, trial, *args, **kwargs):
            try:
                return run_trial(search, trial, data_dir=data_dir, smoke=smoke, head_cache=head_cache)
            except UserError as e:  # these settings cannot run: the trial fails, the search goes on
                logger.warning("Trial %s failed: %s", trial.trial_id, e)
                raise kt.errors.FailedTrialError(str(e)) from None
            except Exception as e:  # a bug or a crash: stop; the same command resumes
                raise kt.errors.FatalError(f"Trial {trial.trial_id}: {type(e).__name__}: {e}") from e

        def save_model(self, trial_id, model, step=0):
            pass  # the trial's run directory holds its model

    return TrialTuner(oracle=oracle, hypermodel=SpaceModel(), directory=search.path, project_name=ORACLE)


def _starting_from_defaults(oracle_class, kt, start):
    """`oracle_class` whose first trial takes every field's default (the base config's values,
    `space.starting_values`) instead of random ones; after that, its own way. A resumed search
    knows what it tried (KerasTuner's state), so the base config is never run twice."""
    if start is None:
        return oracle_class

    class StartingOracle(oracle_class):
        def _random_values(self):
            if self._tried_so_far:
                return super()._random_values()
            hps = kt.HyperParameters()
            for hp in self.hyperparameters.space:
                hps.merge([hp])
                if hps.is_active(hp):
                    hps.values[hp.name] = hp.default
            return hps.values

    StartingOracle.__name__ = oracle_class.__name__
    return StartingOracle


def trial_config(search, hp):
    """The config of a trial: the base config with the trial's active values (and
    Hyperband's epoch budget)."""
    values = {name: value for name, value in hp.values.items()
              if not name.startswith("tuner/") and hp.is_active(name)}
    config = space_lib.apply(search.config, values)
    if "tuner/epochs" in hp.values:
        config = dataclasses.replace(config, epoch_budget=int(hp.values["tuner/epochs"]))
    return config, values


def run_trial(search, trial, *, data_dir=None, smoke=False, head_cache=None):
    """Trains (or resumes, or reads back) one trial; returns `{objective: score}`."""
    from tf_finetune.cli.train_run import train_run

    config, values = trial_config(search, trial.hyperparameters)
    path = search.trial_path(trial.trial_id)
    described = ", ".join(f"{k}={results_lib.format_value(v)}" for k, v in values.items())
    budget = f", {config.epoch_budget} epochs" if config.epoch_budget else ""
    logger.info("Trial %s: %s%s -> %s", trial.trial_id, described, budget, path)
    record = {"trial": {"id": trial.trial_id, "values": values, "tune_dir": search.path}}
    parent = trial.hyperparameters.values.get("tuner/trial_id")
    if parent:  # Hyperband's next round of a trial: continue its run (or resume that continuation)
        continued = continue_trial(search, parent, path, config)
        first = RunDir(_first_run(path))
        if continued or (first.exists() and first.read_record().get("continued_from_trial") == parent):
            record["continued_from_trial"] = parent
            logger.info("Trial %s continues trial %s's run after its epoch %d (Hyperband's next round).",
                        trial.trial_id, parent, trial.hyperparameters.values.get("tuner/initial_epoch", 0))
    if config.folds:
        summary = cross_validation.train_folds(project=search.project, config=config, path=path, data_dir=data_dir,
                                               smoke=smoke, record=record, quiet=True, head_cache=head_cache,
                                               flag=f"trial {trial.trial_id}: folder")
        score = summary["validation"][search.objective]["mean"] if search.objective in summary["validation"] \
            else _mean_history_score(search, [os.path.join(path, r) for r in summary["runs"]])
    else:
        RunDir(path).check_resumable(search.project.name, config, flag=f"trial {trial.trial_id}: folder")
        report = train_run(search.project, config, path, data_dir=data_dir, smoke=smoke, record=record, quiet=True,
                           head_cache=head_cache)
        score = report[search.objective] if search.objective in report else _history_score(search, path)
    results_lib.write_hparams(path, trial.trial_id, values, search.params, {search.objective: score})
    logger.info("Trial %s: %s = %.4f", trial.trial_id, search.objective, score)
    return {search.objective: float(score)}


def continue_trial(search, parent_id, path, config):
    """Starts trial folder `path` as a copy of Hyperband's parent trial, whose run its larger
    budget continues from the parent's last epoch (the budget keeps a run's backup). Returns
    False, and the trial trains from the start, when `path` exists or the parent has no backup."""
    parent = search.trial_path(parent_id)
    runs = trial_runs(parent)
    if os.path.exists(path) or not runs or not all(os.path.isdir(RunDir(r).backup_dir) for r in runs):
        return False
    temp = path + ".copying"
    shutil.rmtree(temp, ignore_errors=True)
    shutil.copytree(parent, temp)
    for name in (cross_validation.SUMMARY + ".json", cross_validation.SUMMARY + ".md"):
        if os.path.exists(os.path.join(temp, name)):
            os.remove(os.path.join(temp, name))
    for i, source in enumerate(runs, 1):
        name = os.path.relpath(source, parent)
        run = RunDir(os.path.normpath(os.path.join(temp, name)))
        state = run.read_state()
        run.write_state({**state, "stages": [s for s in state.get("stages", []) if s["ended"] != "budget"]})
        for leftover in (run.best_checkpoint, run.file(run_dir_lib.METRICS)):
            if os.path.exists(leftover):
                os.remove(leftover)
        shutil.rmtree(os.path.join(run.logs_dir, "hparams"), ignore_errors=True)
        run.write_config(dataclasses.replace(config, fold=i) if name != "." else config)
        run.write_record({**run.read_record(), "continued_from_trial": parent_id})
    os.rename(temp, path)
    return True


def _history_score(search, path):
    """The best epoch's value of a `val_*` objective in the run's history."""
    history = RunDir(path).read_history().get(search.objective)
    if not history:
        raise UserError(f"{path}/history.csv has no {search.objective} column: pick another --objective.")
    return (max if search.direction == "max" else min)(history)


def _mean_history_score(search, paths):
    return sum(_history_score(search, p) for p in paths) / len(paths)


def trial_rows(search, oracle):
    """A `results.TrialRow` per trial the oracle knows, with epochs and time from its run."""
    rows = []
    for trial_id, trial in sorted(oracle.trials.items()):
        values = {k: v for k, v in trial.hyperparameters.values.items()
                  if not k.startswith("tuner/") and trial.hyperparameters.is_active(k)}
        if "tuner/epochs" in trial.hyperparameters.values:
            values["budget"] = trial.hyperparameters.values["tuner/epochs"]
        score = trial.score if trial.status == "COMPLETED" else None
        epochs, seconds = _run_cost(search.trial_path(trial_id))
        rows.append(results_lib.TrialRow(trial_id, trial.status, values, score, epochs, seconds))
    return results_lib.sort_rows(rows, search.direction)


def _run_cost(path):
    """(epochs, seconds) trained in a trial's run directory (summed over its folds)."""
    epochs, seconds = 0, 0.0
    for run in map(RunDir, trial_runs(path)):
        history = run.read_history()
        epochs += len(next(iter(history.values()), []))
        if os.path.isfile(run.file(run_dir_lib.METRICS)):
            seconds += run.read_metrics().get("train_seconds", 0.0)
    return epochs, seconds


def trial_runs(path):
    """The run directories of a trial folder: itself, or its folds (`--folds`); [] before any."""
    if RunDir(path).exists():
        return [path]
    folds = sorted(d for d in os.listdir(path) if d.startswith("fold_")) if os.path.isdir(path) else []
    return [os.path.join(path, d) for d in folds if RunDir(os.path.join(path, d)).exists()]


def write_results(search, oracle):
    """Writes the trials table and `best.toml`; prints the table; returns the sorted rows."""
    rows = trial_rows(search, oracle)
    names = [p.name for p in search.params] + (["budget"] if search.tuner == "hyperband" else [])
    table = results_lib.write_table(rows, names, search.objective, search.path)
    best = next((r for r in rows if r.score is not None), None)
    if best is not None:
        config = RunDir(_first_run(search.trial_path(best.trial_id))).read_config(search.project.config_class)
        if config.folds:
            config = dataclasses.replace(config, folds=search.config.folds, fold=0)
        results_lib.write_best_config(
            config, os.path.join(search.path, "best.toml"),
            f"The best trial ({best.trial_id}, {search.objective} {best.score:.4f}) of the {search.tuner} search in\n"
            f"{search.path}: python -m projects.{search.project.name} train --config best.toml")
    done = sum(r.score is not None for r in rows)
    print(f"\n{search.tuner} search, {done} trial(s) finished, by {search.objective} ({search.direction}):")
    print(table)
    print(f"Written: {os.path.join(search.path, 'results.md')}, results.csv"
          + (f", {os.path.join(search.path, 'best.toml')}" if best else ""))
    return rows


def _first_run(path):
    """The run directory of a trial: the trial's folder, or its first fold."""
    runs = trial_runs(path)
    return runs[0] if runs else path


def _export_best(search, best, export_dir, request):
    """Exports the best trial's model (with --folds: its fold 1; the folds' refit is not trained)."""
    from tf_finetune.cli import commands

    run = RunDir(_first_run(search.trial_path(best.trial_id)))
    project = search.project
    project.import_model_code()
    from tf_finetune.run_dir import load_run

    config, record, model = load_run(run.path, project.name, project.config_class)
    path = commands.export_run(project, run, model, config, export_dir, record, request=request)
    print(f"Exported the best trial ({best.trial_id}): {path}")
