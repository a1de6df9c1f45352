"""Training examples/s of BERT fine-tuning on CPU, one speed-up at a time, as a markdown table.

Every row trains on the same random sample of SST-2 training sentences (`--examples`, 1,024 by
default; batch 32, texts cut at 64 tokens), after an untimed warm-up on the first 4 batches
(graph tracing):

1. keras-hub `BertTextClassifier` as it comes: every text padded to 64 tokens, all trainable.
2. bert_classifier's model, all trainable: batches padded only to their longest text
   (length buckets), the last layer computed at [CLS] only.
3. the same with the embeddings and the first `--freeze-layers` layers frozen, recomputed
   every step (`--no-cache-frozen-prefix`).
4. the frozen prefix cached: epochs run only the layers above it. The one-off pass that
   fills the cache is its own row.

"SST-2 epoch" extrapolates to the 67,349 training sentences.

    python benchmarks/bert_speed.py [--preset DIR] [--data-dir DIR] [--freeze-layers 3]
        [--examples 1024] [--no-write]

Other processes running at the same time slow every row: check the load average printed under
the table.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import runs  # noqa: E402

SST2_TRAIN = 67349


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runs.add_bert_sst2_args(parser)
    parser.add_argument("--freeze-layers", type=int, default=None,
                        help="frozen transformer layers in rows 3-4 (default: the project's)")
    parser.add_argument("--examples", type=int, default=1024, help="training sentences per row")
    parser.add_argument("--batch-size", type=int, default=32)
    runs.add_no_write(parser)
    return parser.parse_args()


def main():
    measured = runs.stamp()  # Before measuring: the code the rows run.
    args = parse_args()
    import keras
    import keras_hub
    import tensorflow as tf

    from projects.bert_classifier.config import BertConfig
    from projects.bert_classifier.model import build_model
    from tf_finetune.models import frozen_prefix
    from tf_finetune.training.prefix_cache import PrefixCache
    from tf_finetune.data import text_dataset
    from tf_finetune.data import text_table
    from tf_finetune.project import Data

    base = BertConfig(preset=args.preset, batch_size=args.batch_size, max_length=64)
    frozen = base.freeze_layers if args.freeze_layers is None else args.freeze_layers
    train = text_table.read_table(os.path.join(args.data_dir, "train.tsv"), class_names=("negative", "positive"))
    train = text_table.limit_per_class(train, args.examples // 2, seed=0)
    classes = Data(train=None, val=None, class_names=train.class_names, source="", examples=[])

    def bucketed():
        return text_dataset.make_text_dataset(
            train.texts, train.labels, batch_size=args.batch_size, max_length=base.max_length,
            shuffle=True, seed=0, boundaries=text_dataset.fine_bucket_boundaries(base.max_length))

    def examples_per_second(model, dataset):
        model.compile(optimizer=keras.optimizers.AdamW(2e-5), loss="sparse_categorical_crossentropy")
        model.fit(dataset.take(4), verbose=0)  # warm-up: tracing
        start = time.time()
        model.fit(dataset, verbose=0)
        return len(train) / (time.time() - start)

    rows = []

    # 1. keras-hub's classifier as it comes; fit() runs its preprocessor on the raw strings.
    keras.utils.set_random_seed(0)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(args.preset, sequence_length=64)
    hub = keras_hub.models.BertTextClassifier.from_preset(
        args.preset, num_classes=2, activation="softmax", preprocessor=preprocessor)
    texts = tf.data.Dataset.from_tensor_slices((list(train.texts), list(train.labels)))
    rows.append(("keras-hub BertTextClassifier, padded to 64 tokens, all trainable",
                 examples_per_second(hub, texts.shuffle(len(train), seed=0).batch(args.batch_size))))
    del hub

    # 2. Length buckets and the last layer at [CLS], all trainable.
    model = build_model(BertConfig(**{**base.to_dict(), "freeze_layers": 0, "freeze_embeddings": False}), classes)
    rows.append(("+ batches padded to their longest text, last layer at [CLS] only, all trainable",
                 examples_per_second(model, bucketed())))

    # 3. Frozen prefix, recomputed every step.
    config = BertConfig(**{**base.to_dict(), "freeze_layers": frozen})
    model = build_model(config, classes)
    rows.append((f"+ embeddings and {frozen} layers frozen, recomputed every step",
                 examples_per_second(model, bucketed())))

    # 4. Frozen prefix cached: the cache pass, then epochs of the top alone.
    prefix, top = frozen_prefix.split_model(model)
    start = time.time()
    cache = PrefixCache.compute(prefix, bucketed())
    cache_rate = len(train) / (time.time() - start)
    rows.append(("+ frozen prefix cached: epochs run only the top", examples_per_second(
        top, cache.dataset(args.batch_size, shuffle=True, seed=0))))

    lines = ["| step | training examples/s | SST-2 epoch | vs previous row |", "|---|---|---|---|"]
    previous = None
    for name, rate in rows:
        ratio = f"{rate / previous:.1f}x" if previous else ""
        lines.append(f"| {name} | {rate:.1f} | {SST2_TRAIN / rate / 60:.1f} min | {ratio} |")
        previous = rate
    lines.append(f"| (one-off) filling the cache: embeddings + {frozen} layers, inference | {cache_rate:.1f} | "
                 f"{SST2_TRAIN / cache_rate / 60:.1f} min | |")
    table = "\n".join(lines)
    print()
    print(table)
    print()
    print(f"{len(train)} SST-2 training sentences per row, batch {args.batch_size}, preset "
          f"{os.path.basename(args.preset.rstrip('/'))}.")
    print(runs.machine(), f"Load average: {os.getloadavg()[0]:.2f}.")
    runs.save_speed(args, "bert_speed", "bert_classifier training speed", __doc__, table, measured)


if __name__ == "__main__":
    main()
