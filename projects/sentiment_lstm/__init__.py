"""Sentiment (any text classification) with an LSTM that reads raw strings.

`python -m projects.sentiment_lstm train --data-dir ../shared/data/imdb` trains a masked
bidirectional LSTM; `--init-from RUN --freeze encoder` fine-tunes another run's encoder on
new data (e.g. IMDB -> SST-2); `--model seed` trains the seed's baseline.
"""
