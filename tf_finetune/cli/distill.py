"""`distill`: train a project's model (the student) on a finished teacher's outputs.

```
python -m projects.sentiment_lstm distill --teacher runs/bert_classifier/sst2 \\
    --config projects/sentiment_lstm/configs/sst2_distill.toml --data-dir ../shared/data/sst2
```

The student's settings, plan, data split, run directory, resume, report and export are
those of `train`; what changes is what it learns from (Hinton et al. 2015; Tang et al.
2019): the training texts plus augmented copies (`transfer_set`), each labelled with the
teacher's logits, and a loss mixing distillation at temperature T with the true labels
(`tf_finetune.distillation.loss`). The teacher labels every text once: its logits are cached
on disk by teacher and text, so a resumed run or a student of another seed reuses them.
"""

import dataclasses
import datetime
import logging
import os
import time

from tf_finetune import config as config_lib
from tf_finetune.cli.tensorflow_logs import load_tensorflow
from tf_finetune.distillation.settings import DistillSettings
from tf_finetune.errors import UserError
from tf_finetune.run_dir import RunDir

logger = logging.getLogger("tf_finetune")


def distill(project, args):
    from tf_finetune.cli.commands import _checked_export_request
    from tf_finetune.distillation.teacher import Teacher

    if project.from_tables is None:
        raise UserError(f"distill: {project.name} cannot be a student: distillation here trains text classifiers "
                        "(sentiment_lstm, bert_classifier) on a teacher's outputs.")
    config = config_lib.build_config(project.config_class, file=args.config, smoke=args.smoke,
                                     overrides=config_lib.overrides_from_args(project.config_class, args))
    settings = DistillSettings(**config_lib.overrides_from_args(DistillSettings, args))
    if config.folds:
        raise UserError("distill does not cross-validate: drop --folds (distil the settings train --folds chose).")
    teacher = Teacher.open(settings.teacher)
    request = _checked_export_request(args)
    path = args.output_dir or os.path.join("runs", project.name,
                                           datetime.datetime.now().strftime("distill-%Y%m%d-%H%M%S"))
    run = RunDir(path)
    if run.check_resumable(project.name, config):
        recorded = run.read_record().get("distillation", {}).get("settings")
        if recorded != settings.recorded():
            changed = sorted(k for k, v in settings.recorded().items() if (recorded or {}).get(k) != v)
            raise UserError(f"--output-dir {run.path} was distilled with other settings ({', '.join(changed)} "
                            "differ): re-run with the same settings to resume, or pass a new --output-dir.")
        logger.info("Resuming the run in %s.", run.path)
    load_tensorflow(args.verbose)
    from tf_finetune.cli.train_run import train_run

    distillation = Distillation(project, config, settings, teacher, args.data_dir)
    train_run(project, config, run.path, data_dir=args.data_dir, smoke=args.smoke, export_dir=args.export_dir,
              request=request, record={"distillation": distillation.record}, data_fn=distillation.data,
              fit_overrides=distillation.fit_arguments)


@dataclasses.dataclass
class Distillation:
    """What a distillation run adds to a training run: its data and its loss.

    `data()` reads the student's tables, builds the transfer set and has the teacher label it
    (and the validation texts) through the cache; `fit_arguments(data)` are the targets and
    loss the trainer fits with; `record` lands in `run.json` as `distillation`.
    """

    project: object
    config: object
    settings: DistillSettings
    teacher: object
    data_dir: str = None
    record: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.record.update(teacher=os.path.abspath(self.teacher.path), teacher_kind=self.teacher.kind,
                           teacher_project=self.teacher.project, teacher_identity=self.teacher.identity,
                           settings=self.settings.recorded())
        self._val_targets = None
        self._unlabelled = ()
        if self.settings.transfer_texts:  # read now: a bad file stops the run before anything is written
            from tf_finetune.data import text_table

            self._unlabelled, _ = text_table.read_texts(self.settings.transfer_texts)

    def data(self):
        from tf_finetune.data import text_data
        from tf_finetune.distillation.teacher import LogitCache

        train, val, source, info = text_data.load_tables(self.config, self.data_dir)
        self.teacher.check_classes(train.class_names)
        self._cache = LogitCache(self.settings.cache_dir, self.teacher)
        data = self.project.from_tables(self.config, train, val, source, info, transfer=self._transfer)
        val_logits, stats = self.teacher.logits(val.texts, self._cache)
        self._val_targets = (val, val_logits)
        self.record["teacher_validation_accuracy"] = round(float((val_logits.argmax(-1) == val.labels).mean()), 4)
        logger.info("Teacher's accuracy on the %d validation texts: %.2f%%.", len(val),
                    100 * self.record["teacher_validation_accuracy"])
        # Loading the teacher drew from Keras's global random state: the student starts from
        # the seed's state, as in `train` (so alpha=0 is plain training, weight for weight).
        import keras

        keras.utils.set_random_seed(self.config.seed)
        return data

    def _transfer(self, train, held_out):
        """The transfer set of the training table: its texts, packed targets and the texts a
        vocabulary adapts to (`text_data.make_data`'s `transfer`)."""
        import numpy as np

        from tf_finetune.distillation import loss
        from tf_finetune.distillation.transfer_set import transfer_texts
        from tf_finetune.distillation.transfer_set import unlabelled_texts

        s = self.settings
        start = time.time()
        texts, sources = transfer_texts(train.texts, copies=s.augment_copies, mask_prob=s.mask_prob,
                                        ngram_prob=s.ngram_prob, ngram_max=s.ngram_max, seed=s.transfer_seed)
        copies = len(texts) - len(train.texts)
        extra, extra_stats = [], None
        if s.transfer_texts:
            extra, extra_stats = unlabelled_texts(self._unlabelled, sentences=s.transfer_sentences,
                                                  limit=s.transfer_max, seed=s.transfer_seed, known=texts,
                                                  held_out=held_out)
            logger.info("Unlabelled transfer texts from %s: %s.", s.transfer_texts,
                        ", ".join(f"{k} {v}" for k, v in extra_stats.items()))
            texts = texts + extra
        logits, stats = self.teacher.logits(texts, self._cache)
        # Texts without a label of their own carry one that only the training `accuracy` reads
        # (`original` keeps it out of the loss): a copy its source's, an unlabelled text the
        # teacher's top class.
        labels = np.concatenate([np.asarray(train.labels)[sources], logits[len(sources):].argmax(-1)])
        original = np.arange(len(texts)) < len(train.texts)
        self.record["transfer_set"] = {"training_texts": len(train.texts), "augmented_copies": copies,
                                       "texts": len(texts), "teacher": stats,
                                       "teacher_train_accuracy": round(float((logits[original].argmax(-1)
                                                                              == labels[original]).mean()), 4),
                                       "seconds": round(time.time() - start, 1)}
        if extra_stats is not None:
            self.record["transfer_set"]["unlabelled_texts"] = extra_stats
        logger.info("Transfer set: %d training texts + %d augmented copies + %d unlabelled texts; teacher logits: "
                    "%d cached, %d computed (%.0f s).", len(train.texts), copies, len(extra), stats["cached"],
                    stats["computed"], stats["seconds"])
        return texts, loss.pack_targets(labels, original, logits), tuple(train.texts) + tuple(extra)

    def fit_arguments(self, data):
        """The trainer's validation batches with packed targets (the batches of `data.val`,
        the teacher's logits looked up by text) and the distillation loss and metrics."""
        import tensorflow as tf

        from tf_finetune.distillation import loss

        val, val_logits = self._val_targets
        first = {}
        for row, text in enumerate(val.texts):
            first.setdefault(text, row)
        rows = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(list(first)), tf.constant(list(first.values()), tf.int64)),
            default_value=-1)
        logits = tf.constant(val_logits)

        def pack(texts, labels):
            teacher = tf.gather(logits, rows.lookup(texts))
            labels = tf.cast(labels, tf.float32)[:, None]
            return texts, tf.concat([labels, tf.ones_like(labels), teacher], axis=1)

        return {"val": data.val.map(pack), **loss.compile_args(self.settings.temperature, self.settings.alpha,
                                                                self.config.label_smoothing)}
