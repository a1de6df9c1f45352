"""Knowledge distillation on SST-2: a BiLSTM student (sentiment_lstm) taught by a fine-tuned BERT.

Each row is one `python -m projects.sentiment_lstm distill ...` run (or, for the baseline, a
`train` run of the same student model without a teacher), scored on SST-2's `dev.tsv` (872
sentences; the kept epoch is the one with the best dev accuracy, as `train` keeps it, so the
last epoch's figure is beside it). Goal (2 CPU cores): the distilled student >= 88.0% on dev, mean of 3 seeds, with
its training under 60 minutes; the teacher labels the transfer set once (cached and reused
across seeds: the `teacher labelling` column says how many texts it labelled in that run and
how long it took, apart from the training time), and the student's SavedModel serves at >= 20x
the teacher's examples/s.

The teacher is a finished bert_classifier run on SST-2 (`--teacher`, default the `sst2` row of
`benchmarks/bert_accuracy.py`). Speed (`--speed STUDENT_EXPORT TEACHER_EXPORT`): both
SavedModels serve the 872 dev sentences in batches of 32, alternating, in one process, after
one untimed warm-up pass each; examples/s per model and their ratio are recorded in
distillation_speed.md.

    python benchmarks/distillation.py --teacher RUN                      # all rows
    python benchmarks/distillation.py --teacher RUN --rows distilled --seeds 1 2
    python benchmarks/distillation.py --table-only RUN...
    python benchmarks/distillation.py --speed saved_models/student/1 saved_models/teacher/1
"""

import argparse
import os
import sys
import time

import runs

from tf_finetune.run_dir import RunDir

CONFIG = os.path.join("projects", "sentiment_lstm", "configs", "sst2_distill.toml")
DISTILL = ["distill", "--teacher", "{teacher}", "--config", CONFIG, "--data-dir", "{data}/sst2",
           "--teacher-cache", "{cache}"]
WORD_VECTORS = ["--embedding-dim", "384", "--word-vectors", "{data}/weights/all-MiniLM-L6-v2"]


def imdb_sentences(n):
    """Flags adding unlabelled movie-review sentences to the transfer set: IMDB's reviews cut
    into sentences (labels unread), a seeded sample of `n` of them, labelled by the teacher
    beside SST-2's phrases and their copies."""
    return ["--transfer-texts", "{data}/imdb/imdb_reviews.csv.gz", "--transfer-sentences", "--transfer-max", str(n)]


ROWS = {
    "distilled": DISTILL,
    "distilled_no_copies": [*DISTILL, "--augment-copies", "0"],
    "same_student_no_teacher": ["--config", CONFIG, "--data-dir", "{data}/sst2"],
    # The student's embedding started from MiniLM-L6's word pieces (384-d), 128 or 64 LSTM units.
    "distilled_wv384": [*DISTILL, *WORD_VECTORS],
    "distilled_wv384_u64": [*DISTILL, *WORD_VECTORS, "--lstm-units", "64"],
    "distilled_wv384_u64_imdb": [*DISTILL, *WORD_VECTORS, "--lstm-units", "64", *imdb_sentences(100_000)],
    "distilled_wv384_u64_imdb250k": [*DISTILL, *WORD_VECTORS, "--lstm-units", "64", *imdb_sentences(250_000)],
    "distilled_wv384_imdb": [*DISTILL, *WORD_VECTORS, *imdb_sentences(100_000)],
    "wv384_no_teacher": ["--config", CONFIG, "--data-dir", "{data}/sst2", *WORD_VECTORS],
    "wv384_u64_no_teacher": ["--config", CONFIG, "--data-dir", "{data}/sst2", *WORD_VECTORS, "--lstm-units", "64"],
}


def table(run_dirs):
    lines = ["| run | teacher dev accuracy | transfer texts | teacher labelling | T, alpha | dev accuracy (best epoch) | "
             "last epoch | macro F1 | train time | command |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for run_dir in run_dirs:
        name, m, c, r = runs.read_run(run_dir)
        d = r.get("distillation")
        if d:
            t = d["transfer_set"]
            teacher = f"{100 * d['teacher_validation_accuracy']:.2f}%"
            transfer = f"{t['training_texts']} + {t['augmented_copies']} copies"
            if "unlabelled_texts" in t:
                transfer += f" + {t['unlabelled_texts']['kept']} unlabelled"
            labelling = (f"{t['teacher']['computed']} texts in {t['teacher']['seconds'] / 60:.1f} min"
                         if t["teacher"]["computed"] else f"none ({t['teacher']['cached']} cached)")
            mix = f"{d['settings']['temperature']:g}, {d['settings']['alpha']:g}"
        else:
            teacher, transfer, labelling, mix = "(none)", f"{r['data']['train_examples']}", "", ""
        last = RunDir(run_dir).read_history()["val_accuracy"][-1]
        lines.append(f"| {name} | {teacher} | {transfer} | {labelling} | {mix} | {100 * m['accuracy']:.2f}% | "
                     f"{100 * last:.2f}% | {m['macro_f1']:.4f} | {m['train_seconds'] / 60:.1f} min | "
                     f"`{runs.train_args(r)}` |")
    return "\n".join(lines)


def serving_speed(student, teacher, texts, batch_size=32, rounds=3):
    """Examples/s of two SavedModels on `texts`, measured alternately in this process."""
    import tensorflow as tf

    from tf_finetune.serving import saved_model

    models = {name: saved_model.load_saved_model(path).signatures[saved_model.SIGNATURE]
              for name, path in (("student", student), ("teacher", teacher))}
    batches = [tf.constant(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
    seconds = {name: 0.0 for name in models}
    for name, serve in models.items():  # warm-up: traces every batch shape once
        for batch in batches:
            serve(batch)
    for _ in range(rounds):
        for name, serve in models.items():
            start = time.perf_counter()
            for batch in batches:
                serve(batch)
            seconds[name] += time.perf_counter() - start
    return {name: rounds * len(texts) / s for name, s in seconds.items()}


def main():
    measured = runs.stamp()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--teacher", default=os.path.join(runs.DEFAULT_OUT, "bert_classifier", "sst2"),
                        help="A finished bert_classifier run on SST-2.")
    parser.add_argument("--out", default=runs.DEFAULT_OUT, help="Runs go to OUT/sentiment_lstm/<row>.")
    parser.add_argument("--data", default=runs.DEFAULT_DATA)
    parser.add_argument("--seeds", nargs="+", type=int, metavar="SEED")
    parser.add_argument("--table-only", nargs="+", metavar="RUN")
    parser.add_argument("--speed", nargs=2, metavar=("STUDENT_EXPORT", "TEACHER_EXPORT"))
    runs.add_no_write(parser)
    args = parser.parse_args()
    if args.speed:
        return speed(args, measured)
    if args.table_only:
        run_dirs = args.table_only
    else:
        out = os.path.join(args.out, "sentiment_lstm")
        fill = {"data": os.path.abspath(args.data), "teacher": os.path.abspath(args.teacher),
                "cache": os.path.join(args.out, "teacher_logits")}
        run_dirs = []
        for name in args.rows:
            row = [a.format(**fill) for a in ROWS[name]]
            for seed in args.seeds or [None]:
                suffix, extra = ("", []) if seed is None else (f"_seed{seed}", ["--seed", str(seed)])
                run_dirs.append(runs.train("sentiment_lstm", name + suffix, [*row, *extra], out, args.data))
    text = table(run_dirs)
    print(f"\n{text}\n\n{runs.machine()}")
    runs.save(args, "distillation", "Knowledge distillation: BERT teacher, BiLSTM student (SST-2 dev)",
              runs.accuracy_intro(__doc__), text, measured)


def speed(args, measured):
    from tf_finetune.data import text_table

    dev = text_table.read_table(os.path.join(args.data, "sst2", "dev.tsv"))
    rate = serving_speed(*args.speed, list(dev.texts))
    text = "\n".join([
        "| student | teacher | student examples/s | teacher examples/s | ratio |",
        "|---|---|---|---|---|",
        f"| {runs.shorten(os.path.abspath(args.speed[0]))} | {runs.shorten(os.path.abspath(args.speed[1]))} | "
        f"{rate['student']:.0f} | {rate['teacher']:.0f} | {rate['student'] / rate['teacher']:.1f}x |"])
    print(f"\n{text}\n\n{runs.machine()}")
    runs.save_speed(args, "distillation_speed", "Distilled student vs teacher: SavedModel serving speed",
                    __doc__, text, measured)


if __name__ == "__main__":
    sys.exit(main())
