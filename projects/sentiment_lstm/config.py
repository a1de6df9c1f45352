"""Settings of the sentiment_lstm project: the shared text-data settings plus the model's."""

import dataclasses
import typing

from tf_finetune.config import flag_name
from tf_finetune.config import option
from tf_finetune.errors import UserError
from tf_finetune.data.text_data import TextDataConfig


@dataclasses.dataclass(frozen=True)
class SentimentConfig(TextDataConfig):
    # === Model ===
    model: str = option(
        "bilstm",
        "bilstm (masked bidirectional LSTM with max-pooling) or seed (the seed's "
        "Embedding(10000, 16) + LSTM(128) + sigmoid baseline, binary only).",
        ("bilstm", "seed"),
    )
    vocab_size: int = option(20000, "Vocabulary size, including the padding and OOV tokens.")
    max_length: int = option(400, "Tokens kept per text (longer texts are cut at the end).")
    embedding_dim: int = option(64, "Word embedding size.")
    lstm_units: int = option(64, "LSTM units (per direction for bilstm).")
    dropout: float = option(0.3, "Dropout before the classification layer.")
    word_vectors: str = option(
        "",
        "A BERT preset (a folder or handle, as bert_classifier's --preset) whose word-piece "
        "embeddings start the word embedding: each vocabulary word gets the mean of its pieces' "
        "vectors. --embedding-dim must be the preset's hidden size (384 for MiniLM-L6).",
    )
    # === Fine-tuning from another run ===
    init_from: str = option(
        "",
        "A sentiment_lstm run directory whose encoder (vocabulary, embedding, LSTM) starts "
        "this model; the classification head is new. The architecture comes from that run.",
    )
    freeze: str = option(
        "none",
        "Keep parts frozen in phase 1: embedding, or encoder (vocabulary + embedding + LSTM; "
        "only the head learns). Phase 2 (--fine-tune-epochs) unfreezes them at "
        "--fine-tune-learning-rate.",
        ("none", "embedding", "encoder"),
    )

    epochs: int = option(3, "Epochs of phase 1.")
    batch_size: int = option(128, "Global batch size (split across replicas).")
    learning_rate: float = option(2e-3, "Peak learning rate of phase 1.")

    # Seconds-long (about 25 s with start-up on 2 cores), yet well above chance: 1,000
    # training texts, a small vocabulary and model, reviews cut at 128 tokens, 3 epochs
    # (0.72 validation accuracy on IMDB).
    SMOKE: typing.ClassVar[dict] = {
        **TextDataConfig.SMOKE,
        "max_examples_per_class": 500,
        "epochs": 3,
        "fine_tune_epochs": 0,
        "batch_size": 32,
        "vocab_size": 5000,
        "max_length": 128,
        "embedding_dim": 32,
        "lstm_units": 16,
        "learning_rate": 5e-3,
    }

    def __post_init__(self):
        super().__post_init__()
        for name in ("embedding_dim", "lstm_units"):
            if getattr(self, name) < 1:
                raise UserError(f"--{flag_name(name)} must be positive. Received: {name}={getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"--dropout must be in [0, 1). Received: dropout={self.dropout}")
        if self.word_vectors and self.init_from:
            raise UserError(
                f"--word-vectors {self.word_vectors} and --init-from {self.init_from} both start the "
                "embedding: pass one of them."
            )
        if self.vocab_size < 3:
            raise UserError(f"--vocab-size must be at least 3 (padding, OOV and a word). Received: vocab_size={self.vocab_size}")
