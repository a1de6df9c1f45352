"""Text classification data in one table file: a header line, then one row per example.

```
review,sentiment                          sentence<TAB>label
"Great film, really.",positive            hide new secretions ...<TAB>0
```

`read_table` reads a CSV or TSV file (gzip or not) into a `TextTable` of texts and integer
labels; bad rows are skipped and counted by reason, never a crash. `find_splits` finds the
train (and validation) file in a data folder, `load_splits` reads them (or makes a seeded
stratified split, after `drop_duplicates`, when there is no validation file), `split` is that split and
`limit_per_class` the seeded per-class sample used by `--smoke`.

Pure Python: no TensorFlow here, so reading data stays cheap and testable.
"""

import collections
import csv
import dataclasses
import gzip
import itertools
import logging
import os
import random
import types
import typing

from tf_finetune.data import splits
from tf_finetune.errors import UserError

logger = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "comment", "tweet")
# Columns that group rows for the splits when --group-column is auto (IMDB's `movie`: reviews
# of one film share names and plot).
GROUP_COLUMNS = ("movie",)
LABEL_COLUMNS = ("label", "sentiment", "class", "category", "target", "polarity", "labels")
# Tried in this order by `find_splits`, each also with `.gz` after it.
TABLE_EXTENSIONS = (".tsv", ".csv", ".txt")
VALIDATION_NAMES = ("dev", "validation", "valid", "val", "test")
GZIP_MAGIC = b"\x1f\x8b"
# Long reviews exceed csv's default 128 KiB field limit; stay within a C long everywhere.
FIELD_SIZE_LIMIT = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class TextTable:
    """Labelled texts read from one table file.

    Attributes:
        path: the file they came from ("" when built in memory).
        texts: the texts, stripped of surrounding whitespace and otherwise verbatim.
        labels: integer label of each text; label `i` is `class_names[i]`.
        class_names: class names.
        skipped: reason -> number of rows skipped for it (e.g. `{"empty text": 3}`).
        text_column, label_column: the header names the texts and labels were read from.
        groups: one group key per text (e.g. the film a review is about) when the table was
            read with a `group_column`, else None; splits keep each group on one side.
        group_column: the header name the groups were read from ("" when none).
    """

    path: str
    texts: tuple
    labels: tuple
    class_names: tuple
    skipped: dict = dataclasses.field(default_factory=dict)
    text_column: str = ""
    label_column: str = ""
    groups: typing.Optional[tuple] = None
    group_column: str = ""

    def __len__(self):
        return len(self.texts)

    def class_counts(self):
        """Class name -> number of texts, in class order."""
        counts = collections.Counter(self.labels)
        return {name: counts.get(i, 0) for i, name in enumerate(self.class_names)}


def read_table(path, *, text_column=None, label_column=None, class_names=None, integer_label_names=None,
               group_column=None):
    """Reads a CSV/TSV table (optionally gzip-compressed) of texts and labels.

    The first line is a header. `.tsv`/`.tab` files are tab-separated with quoting off
    (quote characters are ordinary text), `.csv` files are comma-separated with standard
    quoting, and other files are tab-separated when their header has a tab, else CSV.
    Blank lines are ignored; other unusable rows are skipped and counted in `skipped`.

    Args:
        path: the file; `.gz` or gzip content (by its magic bytes) is decompressed.
        text_column, label_column: header names (case-insensitive); None picks the first
            of `TEXT_COLUMNS` / `LABEL_COLUMNS` present.
        class_names: the classes labels must belong to (a label is a class name or its
            index); rows with other labels are skipped as "unknown label". None infers the
            classes from the labels: integers keep their order, strings are sorted.
        integer_label_names: names for labels 0, 1, ... used only when every label is an
            integer (a dataset's known names, e.g. SST-2's); string labels name themselves.
        group_column: a header name whose values group the rows (`TextTable.groups`); a row
            with an empty group is a group of its own. None: no groups.

    Returns:
        A `TextTable`.

    Raises:
        UserError: when the file is missing or unreadable, its header is not UTF-8, it
            lacks a column, has no usable rows, more than half of its rows are unusable, or
            (when the classes are inferred) holds a single class.
    """
    path = os.path.abspath(os.path.expanduser(str(path)))
    if class_names is not None:
        class_names = _check_class_names(class_names)
    if not os.path.isfile(path):
        what = "is a folder" if os.path.isdir(path) else "does not exist"
        raise UserError(f"Table file {path} {what}: pass a .csv or .tsv file (optionally .gz).")
    try:
        header, rows = _read_rows(path)
    except (OSError, EOFError) as exc:
        raise UserError(
            f"{path} could not be read ({exc}): pass a readable CSV/TSV file, gzip-compressed or not."
        ) from exc
    if header is None:
        raise UserError(f"{path} is empty: expected a header line (e.g. text,label) and one row per example.")
    if not all(_is_utf8(name) for name in header):
        raise UserError(
            f"{path}: its header line is not UTF-8 text: pass a CSV/TSV table saved as UTF-8, "
            "with a header line (e.g. text,label) and one row per example."
        )
    text_index = _column_index(path, header, text_column, TEXT_COLUMNS, "text")
    label_index = _column_index(path, header, label_column, LABEL_COLUMNS, "label")
    if text_index == label_index:
        raise UserError(
            f"{path}: the text and label columns are both {header[text_index]!r}: "
            "pass different --text-column and --label-column."
        )

    group_index = _column_index(path, header, group_column, (), "group") if group_column else None
    texts, raw_labels, groups = [], [], []
    skipped = collections.Counter()
    for number, row in enumerate(rows):
        text = row[text_index].strip() if text_index < len(row) else ""
        label = row[label_index].strip() if label_index < len(row) else ""
        if group_index is not None:
            group = row[group_index].strip() if group_index < len(row) else ""
            groups.append(group if group and _is_utf8(group) else f"row {number + 1}")
        if not (_is_utf8(text) and _is_utf8(label)):
            skipped["undecodable bytes"] += 1
        elif not text:
            skipped["empty text"] += 1
        elif not label:
            skipped["missing label"] += 1
        else:
            texts.append(text)
            raw_labels.append(label)
            continue
        if group_index is not None:
            groups.pop()

    if class_names is None and integer_label_names and raw_labels and all(map(_is_int, raw_labels)):
        class_names = _check_class_names(integer_label_names)
    inferred = class_names is None
    if inferred:
        class_names, labels = _infer_classes(raw_labels)
    else:
        labels = [_class_index(label, class_names) for label in raw_labels]
        skipped["unknown label"] += labels.count(None)
        texts = [text for text, label in zip(texts, labels) if label is not None]
        if group_index is not None:
            groups = [group for group, label in zip(groups, labels) if label is not None]
        labels = [label for label in labels if label is not None]
    skipped = {reason: count for reason, count in skipped.items() if count}
    _check_usable(path, total=len(texts) + sum(skipped.values()), skipped=skipped, class_names=class_names)

    table = TextTable(
        path=path,
        texts=tuple(texts),
        labels=tuple(labels),
        class_names=tuple(class_names),
        skipped=skipped,
        text_column=header[text_index],
        label_column=header[label_index],
        groups=tuple(groups) if group_index is not None else None,
        group_column=header[group_index] if group_index is not None else "",
    )
    if inferred:
        _check_two_classes(table)
    if skipped:
        logger.warning("Skipped %s in %s.", _describe(skipped), path)
    logger.info("Read %d texts from %s: %s.", len(table), path, table.class_counts())
    return table


def read_texts(path, *, text_column=None):
    """`(texts, skipped)`: the texts of a file, without labels (a distillation's unlabelled
    transfer texts). A `.txt` file (optionally `.gz`) holds one text per line; any other file
    is a CSV/TSV table read as `read_table` reads it, its text column named by `text_column`
    or the first of `TEXT_COLUMNS` present (other columns, labels too, are ignored).
    Undecodable and empty texts are skipped and counted in `skipped`."""
    path = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.isfile(path):
        what = "is a folder" if os.path.isdir(path) else "does not exist"
        raise UserError(f"Text file {path} {what}: pass a .txt file (one text per line) or a .csv/.tsv table.")
    lines = os.path.splitext(path.lower().removesuffix(".gz"))[1] == ".txt"
    try:
        if lines:
            with _open_text(path) as f:
                column = [line.strip() for line in f]
        else:
            header, rows = _read_rows(path)
            if header is None:
                raise UserError(f"{path} is empty: expected a header line (e.g. text) and one row per text.")
            index = _column_index(path, header, text_column, TEXT_COLUMNS, "text")
            column = [row[index].strip() if index < len(row) else "" for row in rows]
    except (OSError, EOFError) as exc:
        raise UserError(f"{path} could not be read ({exc}): pass a readable text file or CSV/TSV table, "
                        "gzip-compressed or not.") from exc
    skipped = collections.Counter()
    texts = []
    for text in column:
        if not _is_utf8(text):
            skipped["undecodable bytes"] += 1
        elif text:
            texts.append(text)
        elif not lines:
            skipped["empty text"] += 1
    skipped = {reason: count for reason, count in skipped.items() if count}
    if not texts and not skipped:
        raise UserError(f"{path} holds no texts: expected one text per line (.txt) or per row below a header.")
    _check_usable(path, total=len(texts) + sum(skipped.values()), skipped=skipped)
    if skipped:
        logger.warning("Skipped %s in %s.", _describe(skipped), path)
    return texts, skipped


def find_splits(path):
    """Finds the training table and, if there is one, the validation table.

    A file is the training table itself. In a folder the training table is
    `train.{tsv,csv,txt}[.gz]` and the validation table the first of
    `{dev,validation,valid,val,test}.{tsv,csv,txt}[.gz]` that exists; a folder without a
    train file but with exactly one table file uses that one for training.

    Returns:
        (train_path, val_path or None)
    """
    path = os.path.abspath(os.path.expanduser(str(path)))
    if os.path.isfile(path):
        return path, None
    if not os.path.isdir(path):
        raise UserError(
            f"--data-dir {path} does not exist: pass a .csv/.tsv file or a folder with train.tsv or train.csv."
        )
    # Lower-cased name -> real name, so Train.CSV is found too; the first spelling wins.
    names = {}
    for name in sorted(os.listdir(path)):
        if not name.startswith(".") and os.path.isfile(os.path.join(path, name)):
            names.setdefault(name.lower(), name)

    def first_existing(stems):
        for stem in stems:
            for extension in TABLE_EXTENSIONS:
                for suffix in ("", ".gz"):
                    if stem + extension + suffix in names:
                        return os.path.join(path, names[stem + extension + suffix])
        return None

    train = first_existing(["train"])
    if train is not None:
        return train, first_existing(VALIDATION_NAMES)
    tables = [
        name for lower, name in names.items()
        if lower.removesuffix(".gz").endswith(TABLE_EXTENSIONS)
    ]
    if len(tables) == 1:
        return os.path.join(path, tables[0]), None
    found = f"found {', '.join(tables)}" if tables else "found no .csv/.tsv/.txt file"
    raise UserError(
        f"--data-dir {path} has no train.tsv/train.csv/train.txt (or a single .csv/.tsv/.txt "
        f"file; {found}): name the training table train.csv or train.tsv, or pass the file itself."
    )


def load_splits(path, *, text_column=None, label_column=None, class_names=None,
                integer_label_names=None, validation_split=0.2, seed=0, max_per_class=0,
                folds=0, fold=0, group_column=None):
    """Reads the training and validation tables for `path` (a file or a data folder).

    The validation table is the folder's dev/validation file (see `find_splits`), read
    with the training table's columns and classes; without one it is a seeded stratified
    `split` of the training table. `max_per_class` > 0 then keeps at most that many rows
    per class on each side (a seeded sample; used by `--smoke`); with folds, it is taken
    first, and the folds cut those rows.

    `folds` > 0 cross-validates the training table: validation is its fold `fold` (1 to
    `folds`), and the folder's validation file is not used, except by the refit on all the
    folds (`fold` 0), which it validates. `group_column` names a column whose groups never
    cross a split ("auto" is that of `GROUP_COLUMNS` in the header, if any).

    Returns:
        (train `TextTable`, validation `TextTable`, info), where info is a JSON-friendly
        dict: the files, columns, class names, counts per class, skipped rows and how
        the validation rows were chosen ("file" or "random <validation_split>").
    """
    train_path, val_path = find_splits(path)
    if group_column == "auto":
        group_column = _auto_group_column(train_path)
    train = read_table(
        train_path, text_column=text_column, label_column=label_column, class_names=class_names,
        integer_label_names=integer_label_names, group_column=group_column or None,
    )
    _check_two_classes(train)
    refit_file = val_path if folds and not fold else None  # the refit validates on the data's own file
    if folds and val_path is not None:
        logger.info("Cross-validating on %s; %s %s.", train_path, val_path,
                    "validates the refit" if refit_file else "is not used by the folds")
        val_path = None
    if val_path is not None:
        val = _read_like(val_path, train)
        how = "file"
    else:
        # Copies of one text on both sides would leak validation rows into training.
        train = drop_duplicates(train)
        if folds and max_per_class:  # the folds cut the examples the run uses, not the whole file
            train = limit_per_class(train, max_per_class, seed)
        if refit_file:  # every fold trains
            val = _read_like(refit_file, train)
            how, val_path = f"refit on all {folds} folds, validated on the file", refit_file
        else:
            plan = types.SimpleNamespace(folds=folds, fold=fold, seed=seed, validation_split=validation_split)
            train, val = (_subset(train, i) for i in splits.train_validation(
                range(len(train)), train.labels, plan, train.groups))
            how = splits.describe(plan, train.groups)
        if not len(val):
            raise UserError(
                f"{train_path} has too few rows for a validation split (one per class): "
                "add rows or a dev.tsv/dev.csv validation file beside it."
            )
    if max_per_class and not folds:
        train = limit_per_class(train, max_per_class, seed)
    if max_per_class:
        val = limit_per_class(val, max_per_class, seed)
    info = {
        "train_file": train_path,
        "val_file": val_path,
        "split": how,
        **({"group_column": train.group_column, "groups": {"train": len(set(train.groups)),
                                                           "val": len(set(val.groups or ()))}}
           if train.groups is not None else {}),
        "text_column": train.text_column,
        "label_column": train.label_column,
        "class_names": list(train.class_names),
        "train_counts": train.class_counts(),
        "val_counts": val.class_counts(),
        # A random split's rows came from the train file, whose skips are already counted.
        "skipped": {"train": dict(train.skipped), "val": dict(val.skipped) if val_path else {}},
    }
    return train, val, info


def _read_like(path, table):
    """The table at `path`, read with `table`'s columns and classes (a validation file)."""
    return read_table(path, text_column=table.text_column, label_column=table.label_column,
                      class_names=table.class_names)


def _auto_group_column(path):
    """The first of `GROUP_COLUMNS` in the header of the table at `path`, else None."""
    header, _ = _read_rows(path, header_only=True)
    lowered = [column.lower() for column in header or ()]
    return next((column for column in GROUP_COLUMNS if column in lowered), None)


def split(table, validation_split, seed):
    """Seeded stratified split into (train, validation) `TextTable`s.

    Each class contributes `round(n * validation_split)` rows to validation, at least one
    when it has two or more, so every class is seen on both sides. Both sides keep the
    table's row order, and the same seed gives the same split in every process (see
    `splits.stratified_split`).
    """
    train, val = splits.stratified_split(range(len(table)), table.labels, validation_split, seed, table.groups)
    return _subset(table, train), _subset(table, val)


def hold_out(table, test_split, seed):
    """`(rest, test)` `TextTable`s: a seeded stratified test set that training never sees.

    Duplicate texts are dropped first, so no test text is also a training text."""
    table = drop_duplicates(table)
    rest, test = splits.hold_out(range(len(table)), table.labels, test_split, seed, table.groups)
    return _subset(table, rest), _subset(table, test)


def drop_duplicates(table):
    """Keeps the first row of each distinct text; the others count as "duplicate text"."""
    seen, keep = set(), []
    for index, text in enumerate(table.texts):
        if text not in seen:
            seen.add(text)
            keep.append(index)
    dropped = len(table) - len(keep)
    if not dropped:
        return table
    logger.info("Dropped %d duplicate texts from %s before splitting.", dropped, table.path)
    skipped = {**table.skipped, "duplicate text": table.skipped.get("duplicate text", 0) + dropped}
    return dataclasses.replace(_subset(table, keep), skipped=skipped)


def limit_per_class(table, n, seed):
    """Keeps a seeded random sample of at most `n` rows per class (0 keeps all), in order."""
    if n < 0:
        raise UserError(f"max_per_class must be 0 (keep all) or more. Received: max_per_class={n}")
    if not n:
        return table
    by_class = collections.defaultdict(list)
    for index, label in enumerate(table.labels):
        by_class[label].append(index)
    keep = []
    for label, indices in sorted(by_class.items()):
        if len(indices) > n:
            indices = random.Random(f"{seed}-limit-{label}").sample(indices, n)
        keep.extend(indices)
    return _subset(table, keep)


def _read_rows(path, header_only=False):
    """Returns (header, list of data rows) for the table at `path`, or (None, []) when empty
    (no rows are read with `header_only`).

    Bytes are decoded as UTF-8 with `surrogateescape`, so invalid bytes survive as lone
    surrogates and only their rows are skipped (see `_is_utf8`).
    """
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_SIZE_LIMIT))
    with _open_text(path, newline="") as f:
        first = f.readline()
        if not first.strip():
            return None, []
        extension = os.path.splitext(path.lower().removesuffix(".gz"))[1]
        if extension in (".tsv", ".tab") or (extension != ".csv" and "\t" in first):
            reader = csv.reader(itertools.chain([first], f), delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(itertools.chain([first], f))
        try:
            header = [name.strip() for name in next(reader)]
            rows = [] if header_only else [row for row in reader if row]
        except csv.Error as exc:
            raise UserError(
                f"{path} line {reader.line_num} is not valid CSV ({exc}): check its quoting, "
                "or name it .tsv if it is tab-separated."
            ) from exc
    return header, rows


def _open_text(path, **kwargs):
    """`path` opened as text, gunzipped when it is `.gz` or starts with gzip's magic bytes.

    Bytes are decoded as UTF-8 with `surrogateescape` (see `_is_utf8`); utf-8-sig drops the
    byte-order mark spreadsheet programs put at the start."""
    with open(path, "rb") as f:
        compressed = f.read(2) == GZIP_MAGIC or path.lower().endswith(".gz")
    opener = gzip.open if compressed else open
    return opener(path, "rt", encoding="utf-8-sig", errors="surrogateescape", **kwargs)


def _column_index(path, header, name, candidates, kind):
    """Index of column `name` (case-insensitive), or of the first of `candidates` present."""
    lowered = [column.lower() for column in header]
    wanted = [name.strip().lower()] if name is not None else candidates
    for column in wanted:
        if column in lowered:
            return lowered.index(column)
    columns = ", ".join(header)
    if name is not None:
        raise UserError(
            f"{path} has no {kind} column {name!r} (columns: {columns}): pass --{kind}-column NAME."
        )
    raise UserError(
        f"{path} has none of the usual {kind} columns ({', '.join(candidates)}) in its header "
        f"line (columns: {columns}): pass --{kind}-column NAME."
    )


def _is_utf8(field):
    """False when `field` holds bytes that were not valid UTF-8 (decoded as lone surrogates)."""
    try:
        field.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_int(label):
    return label.isascii() and label.isdigit()


def _check_class_names(class_names):
    if isinstance(class_names, str):
        raise UserError(
            f"class_names must be a list of names, not the string {class_names!r}: "
            "pass e.g. ['negative', 'positive']."
        )
    names = tuple(str(name).strip() for name in class_names)
    if len(set(names)) != len(names) or not all(names):
        raise UserError(
            f"class_names must be distinct and non-empty. Received: class_names={list(class_names)}"
        )
    return names


def _infer_classes(raw_labels):
    """(class names, label ids) for labels read without given classes.

    Integer labels keep their numeric order (0..K-1 stay as they are; others map to
    0..K-1 in sorted order); any other labels are class names, sorted.
    """
    if raw_labels and all(_is_int(label) for label in raw_labels):
        values = sorted({int(label) for label in raw_labels})
        index = {value: i for i, value in enumerate(values)}
        return [str(value) for value in values], [index[int(label)] for label in raw_labels]
    names = sorted(set(raw_labels))
    index = {name: i for i, name in enumerate(names)}
    return names, [index[label] for label in raw_labels]


def _class_index(label, class_names):
    """Index of `label` in `class_names` (by name, else as an integer index), or None."""
    if label in class_names:
        return class_names.index(label)
    if _is_int(label) and int(label) < len(class_names):
        return int(label)
    return None


def _check_usable(path, total, skipped, class_names=()):
    bad = sum(skipped.values())
    if not total:
        raise UserError(f"{path} has a header but no data rows: add one row per example below the header.")
    if bad * 2 > total:
        raise UserError(
            f"{path}: {bad} of {total} rows are unusable ({_describe(skipped)}): "
            f"{_what_to_do(skipped, class_names)}."
        )


def _what_to_do(skipped, class_names):
    """The advice for the most common reason rows were skipped."""
    reason = max(sorted(skipped), key=skipped.get)
    if reason == "undecodable bytes":
        return "save the file as UTF-8 text"
    if reason == "unknown label":
        return (
            f"labels must be one of the classes {', '.join(class_names)} (or their index): "
            "fix the labels, or pass --class-names with every class"
        )
    return "check --text-column/--label-column and the file's format"


def _check_two_classes(table):
    present = [name for name, count in table.class_counts().items() if count]
    if len(present) < 2:
        raise UserError(
            f"{table.path} has texts for one class only ({present[0]!r}): "
            "classification needs at least two classes in the training table."
        )


def _describe(skipped):
    return ", ".join(f"{reason}: {count}" for reason, count in sorted(skipped.items()))


def _subset(table, indices):
    """The rows `indices` of `table`, in the table's order."""
    indices = sorted(indices)
    return dataclasses.replace(
        table,
        texts=tuple(table.texts[i] for i in indices),
        labels=tuple(table.labels[i] for i in indices),
        groups=None if table.groups is None else tuple(table.groups[i] for i in indices),
    )
