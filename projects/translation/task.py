"""The translation task: what the CLI does around training a `Translator`.

- Loss: cross-entropy of the next character given the reference so far (teacher forcing);
  the accuracy of that guess is the checkpoint metric. Padding weighs 0 in both.
- Report: corpus BLEU-4 on the held-out test sentences, Chinese scored per character (the
  hypothesis and every reference split into characters, whitespace dropped; no smoothing),
  with beam search and with greedy decoding; all test translations in `translations.tsv`
  and a few in `metrics.json` and on screen.
- Export: `serving_default` takes 1-D `tf.string` English sentences and returns
  `translation` (1-D `tf.string`), decoded inside the graph.
"""

import json
import os
import time

from tf_finetune import files

BATCH = 128


class TranslationTask:
    # BLEU in metrics.json scores the test split, which no search may choose on.
    objectives = {"val_loss": "min", "val_accuracy": "max"}

    def compile_args(self, config):
        import keras

        return {
            "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "metrics": [],
            "weighted_metrics": ["accuracy"],
        }

    def write_previews(self, data, run_dir, count=5):
        """Before training: `preview.txt`, a few training pairs as the model is fed them
        (English as read, the Chinese ids in and out, the weights that mask padding)."""
        inputs, target_out, weights = next(iter(data.train))
        lines = [f"{len(data.source_vocabulary)} English words and {len(data.target_vocabulary)} "
                 "Chinese characters in the training vocabularies; ids 0-3 are padding, "
                 "out-of-vocabulary, start and end.", ""]
        for i in range(min(count, len(target_out))):
            lines += [f"english:    {inputs['source'][i].numpy().decode('utf-8')}",
                      f"target_in:  {inputs['target_in'][i].numpy().tolist()}",
                      f"target_out: {target_out[i].numpy().tolist()}",
                      f"weights:    {weights[i].numpy().astype(int).tolist()}", ""]
        files.atomic_write_bytes("\n".join(lines).encode("utf-8"), os.path.join(run_dir, "preview.txt"))

    def write_report(self, model, data, out_dir, *, history=None, stage_boundaries=(), extra=None,
                     predictions=None, num_examples=10):
        """BLEU of beam and greedy decoding on the test pairs (`predictions` is for classifiers:
        a translation is always decoded here)."""
        from tf_finetune.reporting import plots

        os.makedirs(out_dir, exist_ok=True)
        sources, references = data.test
        report = {"num_examples": len(sources), "bleu_tokens": "characters", "beam_size": model.beam_size}
        translations = {}
        for name, beam_size in (("beam", model.beam_size), ("greedy", 1)):
            start = time.time()
            if beam_size == model.beam_size and translations:
                translations[name] = translations["beam"]  # beam size 1 is greedy
            else:
                translations[name] = translate_all(model, sources, beam_size)
            report[f"bleu_{name}"] = round(100 * corpus_bleu(references, translations[name]), 2)
            report[f"decode_seconds_{name}"] = round(time.time() - start, 1)
        report["bleu"] = report["bleu_beam"]
        kept = translations["beam"]
        report["examples"] = [
            {"english": s, "translation": t, "references": list(r)}
            for s, t, r in list(zip(sources, kept, references))[:num_examples]
        ]
        if extra:
            report.update(extra)
        with open(os.path.join(out_dir, "translations.tsv"), "w", encoding="utf-8") as f:
            f.write("english\ttranslation\treferences\n")
            for s, t, r in zip(sources, kept, references):
                f.write(f"{s}\t{t}\t{' | '.join(r)}\n")
        files.write_json(report, os.path.join(out_dir, "metrics.json"))
        if history:
            plots.plot_training_curves(history, os.path.join(out_dir, "training_curves.png"),
                                       stage_boundaries=stage_boundaries)
        return report

    def format_report(self, report):
        lines = [
            f"BLEU-4 on {report['num_examples']} held-out sentences, Chinese scored per character:",
            f"  beam search ({report['beam_size']} beams): {report['bleu_beam']:.2f}",
            f"  greedy:                     {report['bleu_greedy']:.2f}",
            "",
            "Examples (English -> translation | references):",
        ]
        for e in report.get("examples", []):
            lines.append(f"  {e['english']} -> {e['translation']} | {' / '.join(e['references'])}")
        return "\n".join(lines)

    def serving_fn(self, model, preprocess, record):
        """`fn(1-D tf.string English) -> {"translation": 1-D tf.string}`, as exported."""
        import tensorflow as tf

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
        def serve(sentences):
            return {"translation": model.translate(sentences)}

        return serve

    def export(self, model, *, preprocess, record, export_dir, examples):
        from tf_finetune.serving import saved_model

        serve = self.serving_fn(model, preprocess, record)

        def verify(path):
            import tensorflow as tf

            inputs = tf.constant(list(examples))
            served = saved_model.load_saved_model(path).signatures[saved_model.SIGNATURE](inputs)["translation"]
            expected = serve(inputs)["translation"]
            different = int(tf.reduce_sum(tf.cast(tf.not_equal(served, expected), tf.int32)))
            if different:
                raise RuntimeError(
                    f"Exported SavedModel does not match the Keras model: {different} of "
                    f"{len(examples)} translations differ."
                )
            return 0.0

        return saved_model.export_serving(model, serve, export_dir=export_dir, verify=verify, plan=record.get("plan"))

    def format_predictions(self, names, outputs, as_json=False):
        lines = []
        for name, translation in zip(names, outputs["translation"]):
            translation = translation.decode("utf-8") if isinstance(translation, bytes) else str(translation)
            if as_json:
                lines.append(json.dumps({"input": name, "translation": translation}, ensure_ascii=False))
            else:
                lines.append(f"{translation}\t{name}")
        return lines


def translate_all(model, sentences, beam_size):
    """Translations of `sentences` (a list of str), in batches, with a traced decoder."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def translate(sentences):
        return model.translate(sentences, beam_size=beam_size)

    out = []
    for i in range(0, len(sentences), BATCH):
        out.extend(t.decode("utf-8") for t in translate(tf.constant(sentences[i: i + BATCH])).numpy())
    return out


def corpus_bleu(references, translations):
    """Corpus BLEU-4 in [0, 1] over characters (keras-hub's `Bleu`); several references each."""
    import keras_hub
    import tensorflow as tf

    def characters(strings):
        return tf.strings.unicode_split(tf.strings.regex_replace(strings, r"\s", ""), "UTF-8")

    bleu = keras_hub.metrics.Bleu(tokenizer=characters, max_order=4)
    bleu.update_state(tf.ragged.constant([list(r) for r in references]), tf.constant(translations))
    return float(bleu.result())
