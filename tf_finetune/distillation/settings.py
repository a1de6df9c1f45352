"""`DistillSettings`: what `distill` adds to a project's training settings (no TensorFlow).

Each field is a flag of `python -m projects.<student> distill` (`temperature` ->
`--temperature`); the student's own settings are the project's, as for `train`. A run's
settings are recorded in its `run.json` (`distillation`), and a rerun with other settings
is refused rather than resumed.
"""

import dataclasses
import os

from tf_finetune.config import option
from tf_finetune.errors import UserError


def default_cache():
    """`$TF_FINETUNE_CACHE/teacher_logits`, else `~/.cache/tf_finetune/teacher_logits`."""
    base = os.environ.get("TF_FINETUNE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tf_finetune")
    return os.path.join(base, "teacher_logits")


@dataclasses.dataclass(frozen=True)
class DistillSettings:
    teacher: str = option(
        "",
        "The teacher: a finished classification run directory of any text project (e.g. bert_classifier) "
        "or a SavedModel it exported, with the same classes as the student's data.",
    )
    temperature: float = option(
        2.0, "Softmax temperature of the distillation loss (Hinton et al.: the teacher's and the "
             "student's logits divided by T; the loss is scaled by T^2).")
    alpha: float = option(
        0.9,
        "Weight of the distillation loss; 1 - alpha goes to the cross-entropy with the true labels of "
        "the original texts (augmented copies have only the teacher's). 0 = plain training.",
    )
    augment_copies: int = option(
        4, "Augmented copies drawn per training text for the transfer set, labelled by the teacher "
           "(Tang et al. 2019; 0: the training texts alone).")
    mask_prob: float = option(0.1, "Transfer set: probability that a word of a copy becomes [MASK].")
    ngram_prob: float = option(0.25, "Transfer set: probability that a copy is cut to a random n-gram of it.")
    ngram_max: int = option(5, "Transfer set: the largest n of those n-grams (n is uniform in 1..ngram_max).")
    transfer_texts: str = option(
        "",
        "Unlabelled texts of the task's domain, added to the transfer set and labelled by the teacher alone "
        "(e.g. movie-review sentences for SST-2): a .txt file with one text per line, or a CSV/TSV table "
        "(its text column; labels are not read), gzip or not. Texts matching a validation or test text "
        "are dropped.")
    transfer_sentences: bool = option(
        False, "Split each --transfer-texts text into sentences first (long reviews become sentence-sized texts).")
    transfer_max: int = option(
        0, "At most this many --transfer-texts texts (after --transfer-sentences and duplicates are dropped): "
           "a sample drawn with --transfer-seed. 0: all of them.")
    transfer_seed: int = option(
        0, "Seed of the transfer set's copies; independent of --seed, so students of several seeds share "
           "one set and the teacher labels it once.")
    teacher_cache: str = option(
        "",
        "Folder of cached teacher logits, one subfolder per teacher (default: $TF_FINETUNE_CACHE/"
        "teacher_logits, else ~/.cache/tf_finetune/teacher_logits). The teacher never labels a text twice.",
    )

    def __post_init__(self):
        if not self.teacher:
            raise UserError("--teacher is required: pass a finished teacher run directory or its SavedModel.")
        if not self.temperature > 0:
            raise UserError(f"--temperature must be positive. Received: temperature={self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise UserError(f"--alpha must be in [0, 1] (the distillation loss's weight). Received: alpha={self.alpha}")
        if self.augment_copies < 0:
            raise UserError(f"--augment-copies must be >= 0. Received: augment_copies={self.augment_copies}")
        for name in ("mask_prob", "ngram_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"--{name.replace('_', '-')} must be in [0, 1]. Received: {name}={getattr(self, name)}")
        if self.transfer_max < 0:
            raise UserError(f"--transfer-max must be >= 0 (0: every text). Received: transfer_max={self.transfer_max}")
        if (self.transfer_sentences or self.transfer_max) and not self.transfer_texts:
            flag = "--transfer-sentences" if self.transfer_sentences else "--transfer-max"
            raise UserError(f"{flag} applies to --transfer-texts, which is not given: pass --transfer-texts FILE "
                            f"or drop {flag}.")
        if self.ngram_max < 1:
            raise UserError(f"--ngram-max must be at least 1. Received: ngram_max={self.ngram_max}")

    @property
    def cache_dir(self):
        return self.teacher_cache or default_cache()

    def to_dict(self):
        return dataclasses.asdict(self)

    def recorded(self):
        """What a resumed run must share with the run it resumes (not where the cache is)."""
        recorded = {k: v for k, v in self.to_dict().items() if k != "teacher_cache"}
        if self.transfer_texts:
            recorded["transfer_texts"] = os.path.abspath(os.path.expanduser(self.transfer_texts))
        else:  # as runs recorded them before these fields existed, so that those runs resume
            for name in ("transfer_texts", "transfer_sentences", "transfer_max"):
                del recorded[name]
        return recorded
