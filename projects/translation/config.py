"""Settings of the translation project: the pairs, the model, decoding, and the recipe."""

import dataclasses
import typing

from tf_finetune.config import TrainConfig
from tf_finetune.config import flag_name
from tf_finetune.config import option
from tf_finetune.errors import UserError


@dataclasses.dataclass(frozen=True)
class TranslationConfig(TrainConfig):
    # === Data ===
    dataset: str = option(
        "cmn_eng",
        "Dataset name: the folder under $TF_FINETUNE_DATA holding cmn.txt (Tatoeba "
        "English<TAB>Chinese<TAB>attribution lines, as from manythings.org/anki).",
    )
    max_pairs: int = option(0, "Use at most this many sentence pairs (0 = all); --smoke sets it small.")
    validation_split: float = option(
        0.05, "Fraction of the English sentences held out for validation (checkpoint choice)."
    )
    test_split: float = option(
        0.05, "Fraction of the English sentences held out for the BLEU score (never trained on "
        "or used to choose a checkpoint). All translations of one English sentence stay together.",
    )
    max_source_length: int = option(32, "English words kept per sentence.")
    max_target_length: int = option(
        48, "Chinese characters per sentence plus the end mark; also the longest translation."
    )
    min_count: int = option(1, "Keep words and characters seen at least this often in training.")
    # === Model ===
    model: str = option(
        "transformer",
        "transformer (keras-hub TransformerEncoder/Decoder layers) or seed (the seed's LSTM "
        "encoder-decoder: the encoder's final state starts the decoder, no attention).",
        ("transformer", "seed"),
    )
    embedding_dim: int = option(192, "Embedding size (the Transformer's width).")
    num_layers: int = option(2, "transformer: encoder layers, and as many decoder layers.")
    num_heads: int = option(4, "transformer: attention heads.")
    intermediate_dim: int = option(768, "transformer: feed-forward width.")
    units: int = option(256, "seed: LSTM units.")
    dropout: float = option(0.1, "Dropout.")
    beam_size: int = option(4, "Decoding: 1 is greedy, more keeps that many beams.")

    epochs: int = option(14, "Training epochs.")
    batch_size: int = option(64, "Global batch size (split across replicas).")
    learning_rate: float = option(1e-3, "Peak learning rate.")
    warmup_epochs: float = option(1.0, "Linear warmup from 0, in epochs.")
    monitor: str = option(
        "val_accuracy",
        "Metric for the best checkpoint: val_accuracy is next-character accuracy given the "
        "reference so far (padding excluded).",
    )

    # A few seconds of training: 2,000 pairs, a tiny Transformer, 8 epochs.
    SMOKE: typing.ClassVar[dict] = {
        "max_pairs": 2000,
        "epochs": 8,
        "fine_tune_epochs": 0,
        "batch_size": 32,
        "embedding_dim": 64,
        "intermediate_dim": 128,
        "num_layers": 1,
        "units": 128,
        "beam_size": 2,
        "validation_split": 0.1,
        "test_split": 0.1,
    }

    def __post_init__(self):
        super().__post_init__()
        if self.fine_tune_epochs:
            raise UserError(
                "--fine-tune-epochs: translation trains from scratch in one phase. "
                f"Received: fine_tune_epochs={self.fine_tune_epochs}"
            )
        for name in ("max_source_length", "embedding_dim", "num_layers", "num_heads",
                     "intermediate_dim", "units", "beam_size", "min_count"):
            if getattr(self, name) < 1:
                raise UserError(f"--{flag_name(name)} must be at least 1. Received: {name}={getattr(self, name)}")
        if self.max_target_length < 2:
            raise UserError(
                "--max-target-length must be at least 2 (a character and the end mark). "
                f"Received: max_target_length={self.max_target_length}"
            )
        if self.folds:
            raise UserError(f"--folds {self.folds}: translation is scored by BLEU on its own test split and "
                            "has no classes to stratify folds by: train it without --folds.")
        if self.max_pairs < 0:
            raise UserError(f"--max-pairs must be >= 0. Received: max_pairs={self.max_pairs}")
        if not 0.0 < self.test_split < 1.0 or self.validation_split + self.test_split >= 1.0:
            raise UserError(
                "--test-split must be in (0, 1), and with --validation-split leave some pairs "
                f"for training. Received: validation_split={self.validation_split}, "
                f"test_split={self.test_split}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"--dropout must be in [0, 1). Received: dropout={self.dropout}")
        if self.embedding_dim % self.num_heads:
            raise UserError(
                "--embedding-dim must be a multiple of --num-heads. Received: "
                f"embedding_dim={self.embedding_dim}, num_heads={self.num_heads}"
            )
