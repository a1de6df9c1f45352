"""EDA text augmentation: tf_finetune's TextAugmentation vs keras-hub's RandomDeletion + RandomSwap.

Both delete words with probability 0.1, then swap words at rate 0.1, on the same SST-2
training sentences, batched by 64 in a `tf.data` map: texts per second, whether three runs
with the same seed give the same output, and how many texts come out empty. keras-hub's
layers work on token tensors, so its row splits each text on whitespace and joins the words
back with spaces (what tf_finetune's layers do inside). The rows alternate in one process
(`--repeats` rounds), each keeping its fastest round; serial (`num_parallel_calls=None`) and
parallel (AUTOTUNE) maps are separate rows. A parallel map runs batches in whatever order its
threads take them, so a layer drawing its seed per call repeats only when each batch brings
its own seed (how tf_finetune's pipelines call it; keras-hub's layers take none).

    python benchmarks/text_augmentation.py [--texts 20000] [--repeats 3] [--no-write]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import runs  # noqa: E402

RATE = 0.1
SEED = 0


def ours():
    from tf_finetune.augmentation import TextAugmentation

    return TextAugmentation(word_deletion=RATE, word_swap=RATE, seed=SEED)


def keras_hub_layers():
    import keras_hub
    import tensorflow as tf

    delete = keras_hub.layers.RandomDeletion(rate=RATE, seed=SEED, dtype="string")
    swap = keras_hub.layers.RandomSwap(rate=RATE, seed=SEED + 1, dtype="string")

    def augment(texts, training=True):
        return tf.strings.reduce_join(swap(delete(tf.strings.split(texts))), axis=-1, separator=" ")

    return augment


def run_once(make, texts, parallel, batch_seeds=False):
    """(seconds, outputs) of one pass of a fresh, seeded augmentation over `texts`; with
    `batch_seeds`, each batch gets its own seed from a seeded stream (tf_finetune's pipelines)."""
    import tensorflow as tf

    augment = make()
    calls = tf.data.AUTOTUNE if parallel else None
    ds = tf.data.Dataset.from_tensor_slices(texts).batch(64)
    if batch_seeds:
        seeds = tf.data.Dataset.random(seed=SEED).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(lambda x, pair: augment(x, training=True, seed=pair),
                                                num_parallel_calls=calls)
    else:
        ds = ds.map(lambda x: augment(x, training=True), num_parallel_calls=calls)
    start = time.perf_counter()
    outputs = [text for batch in ds for text in batch.numpy()]
    return time.perf_counter() - start, outputs


def main(argv=None):
    measured = runs.stamp()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=runs.DEFAULT_DATA, help="The data root (holds sst2/).")
    parser.add_argument("--texts", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    runs.add_no_write(parser)
    args = parser.parse_args(argv)

    from tf_finetune.data import text_table

    table_ = text_table.read_table(os.path.join(args.data, "sst2", "train.tsv"))
    texts = list(table_.texts[: args.texts])
    variants = [("tf_finetune TextAugmentation", ours, False),
                ("tf_finetune TextAugmentation, a seed per batch", ours, True),
                ("keras_hub RandomDeletion + RandomSwap", keras_hub_layers, False)]
    rows = {(name, parallel): [] for parallel in (False, True) for name, _, _ in variants}
    for parallel in (False, True):
        for _ in range(args.repeats):  # alternate, so all see the same machine
            for name, make, batch_seeds in variants:
                rows[(name, parallel)].append(run_once(make, texts, parallel, batch_seeds))

    lines = ["| augmentation | map | texts | texts/s (best of repeats) | identical over repeats | empty outputs |",
             "|---|---|---:|---:|---|---:|"]
    for (name, parallel), results in rows.items():
        best = min(seconds for seconds, _ in results)
        same = all(outputs == results[0][1] for _, outputs in results[1:])
        empty = sum(1 for text in results[0][1] if not text.strip())
        lines.append(f"| {name} | {'parallel' if parallel else 'serial'} | {len(texts)} | "
                     f"{len(texts) / best:,.0f} | {'yes' if same else 'no'} | {empty} |")
    table = "\n".join(lines)
    print(table)
    print()
    print(runs.machine())
    runs.save_speed(args, "text_augmentation", "Text augmentation: tf_finetune vs keras-hub", __doc__, table,
                    measured)


if __name__ == "__main__":
    main()
