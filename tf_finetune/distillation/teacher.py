"""The teacher of a distillation: a finished text classifier, and its cached logits.

A teacher is a run directory of any text classification project (`bert_classifier`,
`sentiment_lstm`) or a SavedModel exported from one: both take raw strings and return class
probabilities. Its logits are taken as log-probabilities: `log softmax(z) = z - logsumexp(z)`
differs from the logits `z` by one number per text, which a softmax at any temperature
cancels, so the soft targets are exact.

Logits are cached on disk per teacher (a digest of its weights files) and per text (a digest
of the text), so the teacher never labels the same text twice: not within a run, not when a
run resumes, not for students of other seeds.

```python
teacher = Teacher.open("runs/bert_classifier/sst2")   # checks, no TensorFlow yet
teacher.check_classes(("negative", "positive"), flag="--teacher")
logits, stats = teacher.logits(texts, LogitCache(cache_dir, teacher))
```
"""

import dataclasses
import hashlib
import importlib
import logging
import os
import time
import uuid

import numpy as np

from tf_finetune import files
from tf_finetune.errors import UserError
from tf_finetune.errors import first_line
from tf_finetune.run_dir import RunDir

logger = logging.getLogger(__name__)

BATCH_SIZE = 128
CACHE_PART = 20_000  # texts the teacher labels between two writes to its logit cache
LOG_FLOOR = 1e-30  # log(0) guard for probabilities that underflowed


@dataclasses.dataclass
class Teacher:
    """A teacher found at `path`.

    Attributes:
        path: the run directory or SavedModel folder.
        kind: "run" or "saved_model".
        class_names: its classes, in its output order.
        project: the teacher run's project name ("" for a SavedModel without export.json).
        identity: a digest of its weights files: the key of its cached logits.
    """

    path: str
    kind: str
    class_names: tuple
    project: str
    identity: str
    _predict: object = None

    @classmethod
    def open(cls, path, flag="--teacher"):
        """Finds and checks the teacher at `path` without loading it (no TensorFlow)."""
        from tf_finetune.serving import versions

        run = RunDir(path)
        if run.exists():
            record = run.read_record()
            name = record.get("project", "")
            _check_text_classifier(name, path, flag)
            if not run.is_finished():
                raise UserError(f"{flag} {run.path} has not finished training (no best model yet): finish it "
                                "(re-run its train command) or pass another teacher.")
            return cls(run.path, "run", tuple(record["class_names"]), name, _digest([run.best_checkpoint]))
        found = versions.find_export(path) if os.path.exists(path) else None
        if found is None or found[0] != "saved_model":
            raise UserError(f"{flag} {os.path.abspath(path)} is not a run directory or a SavedModel: pass a finished "
                            "teacher run (e.g. runs/bert_classifier/<timestamp>) or its exported SavedModel.")
        folder = found[1]
        info = _read_json_if_any(os.path.join(folder, "export.json"))
        if info.get("project"):
            _check_text_classifier(info["project"], folder, flag)
        labels = os.path.join(folder, "assets", "labels.txt")
        if not os.path.isfile(labels):
            raise UserError(f"{flag} {folder} has no assets/labels.txt, so it is not a classifier exported by "
                            "tf-finetune: pass a text classifier's SavedModel or run directory.")
        with open(labels, encoding="utf-8") as f:
            class_names = tuple(line.rstrip("\n") for line in f if line.strip())
        weights = [os.path.join(folder, "saved_model.pb")] + sorted(
            os.path.join(folder, "variables", n) for n in os.listdir(os.path.join(folder, "variables")))
        return cls(folder, "saved_model", class_names, info.get("project", ""), _digest(weights))

    def check_classes(self, class_names, flag="--teacher"):
        """One line when the student's classes are not the teacher's, in the same order."""
        if tuple(class_names) != self.class_names:
            raise UserError(f"{flag} {self.path} predicts the classes {list(self.class_names)}, the student's data has "
                            f"{list(class_names)}: pass a teacher trained on the same classes (same order).")

    def load(self):
        """Loads the model (TensorFlow); `logits` calls this when needed."""
        import tensorflow as tf

        if self._predict is not None:
            return
        if self.kind == "run":
            project = _project(self.project)
            project.import_model_code()
            from tf_finetune.run_dir import load_run

            config, record, model = load_run(self.path, project.name, project.config_class, flag="--teacher")
            preprocess = project.preprocess(config)

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
            def predict(texts):
                return model(preprocess(texts), training=False)
        else:
            from tf_finetune.serving import saved_model

            serve = saved_model.load_saved_model(self.path).signatures[saved_model.SIGNATURE]

            def predict(texts):
                outputs = serve(texts)
                if "probabilities" not in outputs:
                    raise UserError(f"--teacher {self.path} returns {sorted(outputs)}, not probabilities: pass a "
                                    "text classifier.")
                return outputs["probabilities"]
        self._predict = predict

    def predict_logits(self, texts):
        """The teacher's logits (log-probabilities) for `texts`, computed now, shape (N, C).

        Texts go in batches of similar length (each padded only to its longest)."""
        import tensorflow as tf

        self.load()
        texts = list(texts)
        out = np.zeros((len(texts), len(self.class_names)), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        start, last_log = time.time(), time.time()
        for begin in range(0, len(order), BATCH_SIZE):
            rows = order[begin:begin + BATCH_SIZE]
            try:
                probabilities = np.asarray(self._predict(tf.constant([texts[i] for i in rows])))
            except (tf.errors.InvalidArgumentError, ValueError) as e:
                raise UserError(f"--teacher {self.path} failed on the student's texts ({first_line(e)}): the "
                                "teacher must be a classifier of raw text.") from None
            if probabilities.shape[-1] != len(self.class_names):
                raise UserError(f"--teacher {self.path} outputs {probabilities.shape[-1]} classes, its labels name "
                                f"{len(self.class_names)}: pass a classifier of the student's classes.")
            out[rows] = np.log(np.maximum(probabilities, LOG_FLOOR))
            if time.time() - last_log > 30:
                done = begin + len(rows)
                logger.info("Teacher: %d of %d texts labelled (%.0f texts/s).", done, len(texts),
                            done / (time.time() - start))
                last_log = time.time()
        return out

    def logits(self, texts, cache):
        """`(logits, stats)`: the logits of `texts`, from `cache` where it has them; the rest
        are computed once and added to it. `stats`: cached, computed, seconds."""
        texts = list(texts)
        logits, missing = cache.lookup(texts)
        start = time.time()
        if missing:
            unique = list(dict.fromkeys(texts[i] for i in missing))
            logger.info("Teacher %s labels %d texts (%d already cached).", self.path, len(unique),
                        len(texts) - len(missing))
            # Shortest first, cached a part at a time: a run stopped while the teacher labels
            # keeps what it labelled so far (and the parts pad little, their texts alike in length).
            unique.sort(key=len)
            where = {}
            for begin in range(0, len(unique), CACHE_PART):
                part = unique[begin:begin + CACHE_PART]
                fresh = self.predict_logits(part)
                cache.add(part, fresh)
                where.update(zip(part, fresh))
                if len(unique) > CACHE_PART:
                    logger.info("Teacher: %d of %d texts labelled and cached.", begin + len(part), len(unique))
            for i in missing:
                logits[i] = where[texts[i]]
        seconds = time.time() - start
        if missing:
            logger.info("Teacher labelled %d texts in %.0f s (%.0f texts/s).", len(set(texts[i] for i in missing)),
                        seconds, len(missing) / max(seconds, 1e-9))
        return logits, {"cached": len(texts) - len(missing), "computed": len(missing), "seconds": round(seconds, 1)}


class LogitCache:
    """A teacher's logits on disk, by text: `DIR/<teacher identity>/part-*.npz`.

    Each call to `add` writes one new part (atomically), so concurrent students of one
    teacher never overwrite each other; `lookup` reads them all.
    """

    def __init__(self, root, teacher):
        self.folder = os.path.join(root, teacher.identity[:32])
        self.num_classes = len(teacher.class_names)
        self._table = None

    def _load(self):
        if self._table is None:
            self._table = {}
            names = sorted(n for n in os.listdir(self.folder) if n.endswith(".npz")) if os.path.isdir(self.folder) else []
            for name in names:
                try:
                    with np.load(os.path.join(self.folder, name), allow_pickle=False) as part:
                        keys, values = part["keys"], part["logits"]
                except (OSError, ValueError, KeyError) as e:
                    logger.warning("Skipping the unreadable teacher-logit file %s (%s).", name, e)
                    continue
                if values.ndim == 2 and values.shape[1] == self.num_classes:
                    self._table.update(zip(keys.tolist(), values))
        return self._table

    def lookup(self, texts):
        """`(logits, missing)`: an (N, C) array with the cached rows filled, and the indices of
        the texts not in the cache."""
        table = self._load()
        logits = np.zeros((len(texts), self.num_classes), np.float32)
        missing = []
        for i, text in enumerate(texts):
            row = table.get(_key(text))
            if row is None:
                missing.append(i)
            else:
                logits[i] = row
        return logits, missing

    def add(self, texts, logits):
        keys = np.array([_key(t) for t in texts])
        os.makedirs(self.folder, exist_ok=True)
        path = os.path.join(self.folder, f"part-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}.npz")
        with files.atomic_path(path) as temp_path:
            with open(temp_path, "wb") as f:
                np.savez(f, keys=keys, logits=np.asarray(logits, np.float32))
        self._load().update(zip(keys.tolist(), np.asarray(logits, np.float32)))


def _key(text):
    # Hex, not the raw digest: NumPy's bytes arrays drop trailing NUL bytes, so a raw
    # digest ending in one would not match itself once read back.
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _digest(paths):
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _project(name):
    try:
        return importlib.import_module(f"projects.{name}.project").PROJECT
    except (ImportError, AttributeError):
        return None


def _check_text_classifier(name, path, flag):
    from tf_finetune.data.text_data import TextDataConfig
    from tf_finetune.tasks import ClassificationTask

    project = _project(name)
    if project is None:
        raise UserError(f"{flag} {path} is a run of {name!r}, not of a tf-finetune project: pass a text "
                        "classification run (e.g. bert_classifier).")
    if not isinstance(project.task, ClassificationTask) or not issubclass(project.config_class, TextDataConfig):
        raise UserError(f"{flag} {path} is a {name} run, which does not classify text: the teacher must be a "
                        "text classifier with the student's classes (e.g. a bert_classifier run).")


def _read_json_if_any(path):
    import json

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
