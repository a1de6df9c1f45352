"""English to Chinese translation on the Tatoeba pairs.

`python -m projects.translation train --data-dir ../shared/data/cmn_eng` trains a small
Transformer (keras-hub layers) on English words and Chinese characters and scores character
BLEU-4 on held-out sentences; `--model seed` trains the seed's LSTM encoder-decoder. The
export translates raw English strings inside the graph (greedy or beam search).
"""
