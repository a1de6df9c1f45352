"""Text classification by fine-tuning a pretrained BERT (keras-hub).

`python -m projects.bert_classifier train --data-dir ../shared/data/sst2 --preset
../shared/data/weights/all-MiniLM-L6-v2` fine-tunes MiniLM-L6 on SST-2. The embeddings and
the first `--freeze-layers` transformer layers stay frozen and are computed once (the frozen
prefix cache), so each epoch runs only the layers above them. The export serves raw strings:
the WordPiece tokenizer is inside the model.
"""
