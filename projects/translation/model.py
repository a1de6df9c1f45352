"""The translation model factory: `--model transformer` (the default) or `seed`."""

from projects.translation.lstm import LstmTranslator
from projects.translation.transformer import TransformerTranslator


def build_model(config, data):
    """A built `Translator` over `data`'s vocabularies, sized by `config`."""
    shared = dict(
        source_vocabulary=data.source_vocabulary,
        target_vocabulary=data.target_vocabulary,
        max_source_length=config.max_source_length,
        max_target_length=config.max_target_length,
        beam_size=config.beam_size,
        dropout=config.dropout,
        embedding_dim=config.embedding_dim,
    )
    if config.model == "seed":
        model = LstmTranslator(units=config.units, name="seed_translator", **shared)
    else:
        model = TransformerTranslator(num_layers=config.num_layers, num_heads=config.num_heads,
                                      intermediate_dim=config.intermediate_dim,
                                      name="transformer_translator", **shared)
    model.build()
    return model
