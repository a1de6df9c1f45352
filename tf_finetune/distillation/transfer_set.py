"""The transfer set: the texts a student learns from its teacher, with augmented copies.

Tang et al. 2019 ("Distilling Task-Specific Knowledge from BERT into Simple Neural
Networks", section 3.2) grow the training texts with copies that the teacher labels, so the
student sees how the teacher's output moves when words change. For each training text and
each copy, every word is masked with probability `mask_prob` (replaced by `mask_token`), and
then, with probability `ngram_prob`, the copy is cut to a random n-gram of it, n drawn from
1 to `ngram_max`. Their third operation, part-of-speech-guided word replacement, needs a
tagger and a tagged corpus, which this offline suite does not have; it is left out.

Unlabelled texts of the task's domain (`unlabelled_texts`: e.g. movie-review sentences for
SST-2) join the set too, labelled by the teacher alone: Hinton et al. 2015's transfer set,
for which Tang et al.'s augmentation stands in when no such texts are at hand.

Copies equal to a text already in the set are dropped (the teacher would label the same
text twice), and so are empty ones. The set is a function of the texts, the settings and
`seed` alone, never of the student's seed: students of several seeds share one set, so
the teacher labels it once. Each text's copies depend only on the text and `seed`, so a
subset of the texts (`--max-examples-per-class`) has the same copies of the texts it keeps.

```python
texts, sources = transfer_texts(["a moving , funny film"], copies=4, mask_prob=0.1, ngram_prob=0.25,
                                ngram_max=5, seed=0)
# texts:   ['a moving , funny film', ', funny film', 'a [MASK] , [MASK] film']
#          (two of the four copies were the text itself, unchanged, and were dropped)
# sources: [0, 0, 0]  (the index of the training text each came from)
```
"""

import re
import zlib

import numpy as np

MASK_TOKEN = "[MASK]"


def augment(words, rng, *, mask_prob, ngram_prob, ngram_max, mask_token=MASK_TOKEN):
    """One augmented copy of `words` (a list of str): masking, then n-gram sampling."""
    words = [mask_token if rng.random() < mask_prob else word for word in words]
    if words and rng.random() < ngram_prob:
        n = min(int(rng.integers(1, ngram_max + 1)), len(words))
        start = int(rng.integers(0, len(words) - n + 1))
        words = words[start:start + n]
    return words


def transfer_texts(texts, *, copies, mask_prob, ngram_prob, ngram_max, seed, mask_token=MASK_TOKEN):
    """`(texts, sources)`: every text of `texts`, then up to `copies` augmented copies of each.

    Args:
        texts: the training texts.
        copies: augmented copies drawn per text (0: the texts alone).
        mask_prob: probability that a word of a copy becomes `mask_token`.
        ngram_prob: probability that a copy is cut to one of its n-grams.
        ngram_max: the largest n of an n-gram (n is uniform in 1..ngram_max).
        seed: fixes every draw.

    Returns:
        The transfer texts (the originals first, in order, then the new copies) and, for
        each, the index in `texts` of the text it came from.
    """
    out, sources = list(texts), list(range(len(texts)))
    if not copies:
        return out, sources
    seen = set(out)
    for index, text in enumerate(texts):
        # Each text's copies are a function of the seed and the text alone (not of its place
        # in the list), so a subset or another order of the texts gets the same copies.
        rng = np.random.default_rng([seed, zlib.crc32(text.encode("utf-8"))])
        words = text.split()
        for _ in range(copies):
            copy = " ".join(augment(words, rng, mask_prob=mask_prob, ngram_prob=ngram_prob, ngram_max=ngram_max,
                                    mask_token=mask_token))
            if copy and copy not in seen:
                seen.add(copy)
                out.append(copy)
                sources.append(index)
    return out, sources


_LINE_BREAK = re.compile(r"<br\s*/?>|[\r\n]+", re.IGNORECASE)
# A sentence ends at . ! or ? (or one of them and a closing quote or bracket) before the
# capital letter, digit or opening quote that starts the next one; not after a title (Mr.
# Smith). Only the space between two sentences is cut out.
_TITLES = "".join(rf"(?<!\b{t}\.)" for t in ("Mr", "Ms", "Dr", "St", "Mrs", "Jr", "Sr", "vs"))
_SENTENCE_END = re.compile(r"(?:" + _TITLES + r"(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text):
    """The sentences of `text`: split at HTML line breaks, newlines, and `.`/`!`/`?` followed
    by a capitalised word (not after a title such as "Mr."). A heuristic, good enough to turn
    long reviews into sentence-sized transfer texts."""
    sentences = []
    for part in _LINE_BREAK.split(text):
        sentences.extend(s.strip() for s in _SENTENCE_END.split(part) if s.strip())
    return sentences


def text_key(text):
    """A text's words, lower-cased, "n't" as "not", punctuation dropped: "It's fine." and
    SST-2's tokenized "it 's fine ." have the same key."""
    return " ".join(re.findall(r"\w+", text.lower().replace("n't", " not")))


def unlabelled_texts(texts, *, sentences, limit, seed, known=(), held_out=()):
    """`(texts, stats)`: the unlabelled transfer texts to add to a transfer set.

    Args:
        texts: the texts read from the user's file.
        sentences: split each text into sentences first (`split_sentences`).
        limit: keep at most this many (0: all), a sample drawn with `seed`, in file order.
        seed: fixes the sample.
        known: texts already in the transfer set (the training texts): dropped as duplicates.
        held_out: validation and test texts: dropped, so that the student never learns the
            teacher's answer on a text it is then scored on.

    Duplicates and held-out matches are found by `text_key`, so a differently tokenized or
    capitalised copy of a text counts as the same text.

    Returns:
        The kept texts and counts of what was read, split, dropped and kept.
    """
    stats = {"read": len(texts)}
    if sentences:
        texts = [sentence for text in texts for sentence in split_sentences(text)]
        stats["sentences"] = len(texts)
    seen = {text_key(text) for text in known}
    held_out = {text_key(text) for text in held_out}
    kept, duplicates, matched = [], 0, 0
    for text in texts:
        key = text_key(text)
        if not key:
            duplicates += 1
        elif key in held_out:
            matched += 1
        elif key in seen:
            duplicates += 1
        else:
            seen.add(key)
            kept.append(text)
    stats.update(duplicates=duplicates, held_out=matched)
    if limit and len(kept) > limit:
        rng = np.random.default_rng(seed)
        kept = [kept[i] for i in sorted(rng.choice(len(kept), size=limit, replace=False))]
    stats["kept"] = len(kept)
    return kept, stats
