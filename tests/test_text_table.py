import gzip
import os

import pytest

from tests.conftest import require_data
from tf_finetune.data import text_table
from tf_finetune.errors import UserError


def write(path, content):
    """Writes `content` (str as UTF-8, or raw bytes) to `path` and returns it as a str."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def write_rows(path, rows, header="text\tlabel"):
    """A TSV with one `text<TAB>label` line per (text, label) pair."""
    return write(path, header + "\n" + "".join(f"{t}\t{l}\n" for t, l in rows))


def in_memory(labels, class_names=("a", "b", "c")):
    return text_table.TextTable(
        path="",
        texts=tuple(f"text {i}" for i in range(len(labels))),
        labels=tuple(labels),
        class_names=tuple(class_names),
        skipped={},
        text_column="text",
        label_column="label",
    )


def test_csv_keeps_quoted_commas_quotes_and_newlines(tmp_path):
    path = write(
        tmp_path / "reviews.csv",
        'review,sentiment\n'
        '"Good, not great. He said ""wow"".<br /><br />Fine",positive\n'
        '"two\nlines",negative\n'
        '  plain  ,positive\n',
    )
    table = text_table.read_table(path)
    assert table.texts == ('Good, not great. He said "wow".<br /><br />Fine', "two\nlines", "plain")
    assert table.class_names == ("negative", "positive")
    assert table.labels == (1, 0, 1)
    assert (table.text_column, table.label_column) == ("review", "sentiment")
    assert table.path == path and len(table) == 3 and table.skipped == {}


def test_tsv_reads_quote_characters_as_text(tmp_path):
    path = write(
        tmp_path / "train.tsv",
        'sentence\tlabel\n"the movie\t1\nit \'s a "great" film \t0\n"" quoted, with comma\t1\n',
    )
    table = text_table.read_table(path)
    assert table.texts == ('"the movie', 'it \'s a "great" film', '"" quoted, with comma')
    assert table.labels == (1, 0, 1)
    assert table.class_names == ("0", "1")


def test_txt_file_is_sniffed_from_its_header(tmp_path):
    tabs = text_table.read_table(write(tmp_path / "a.txt", 'text\tlabel\n"x, y\t1\nz\t0\n'))
    commas = text_table.read_table(write(tmp_path / "b.txt", 'text,label\n"x, y",1\nz,0\n'))
    assert tabs.texts == ('"x, y', "z")
    assert commas.texts == ("x, y", "z")


@pytest.mark.parametrize("name", ["data.csv.gz", "data.csv"])
def test_gzip_by_suffix_or_by_magic_bytes(tmp_path, name):
    # "data.csv" holds gzip bytes without saying so: the magic bytes give it away.
    path = write(tmp_path / name, gzip.compress(b"text,label\nhello,pos\nbye,neg\n"))
    table = text_table.read_table(path)
    assert table.texts == ("hello", "bye")
    assert table.class_names == ("neg", "pos")


def test_broken_gzip_is_one_clear_line(tmp_path):
    path = write(tmp_path / "t.csv.gz", gzip.compress(b"text,label\nhello,pos\n" * 50)[:40])
    with pytest.raises(UserError, match="could not be read") as info:
        text_table.read_table(path)
    assert str(info.value).startswith(path)


def test_byte_order_mark_is_not_part_of_the_header(tmp_path):
    path = write(tmp_path / "bom.csv", b"\xef\xbb\xbftext,label\nhi,1\nho,0\n")
    assert text_table.read_table(path).text_column == "text"


@pytest.mark.parametrize(
    "labels, class_names, ids",
    [
        (["1", "0", "1"], ("0", "1"), (1, 0, 1)),  # already 0..K-1
        (["5", "3", "10"], ("3", "5", "10"), (1, 0, 2)),  # numeric, not string, order
        (["pos", "neg", " pos "], ("neg", "pos"), (1, 0, 1)),
        (["b", "c", "a", "c"], ("a", "b", "c"), (1, 2, 0, 2)),  # three classes
    ],
)
def test_inferred_classes(tmp_path, labels, class_names, ids):
    path = write_rows(tmp_path / "t.tsv", [(f"text {i}", l) for i, l in enumerate(labels)])
    table = text_table.read_table(path)
    assert table.class_names == class_names
    assert table.labels == ids


def test_given_class_names_accept_names_and_indices(tmp_path):
    rows = [("t1", "pos"), ("t2", "0"), ("t3", "neg"), ("t4", "1"), ("t5", "2"), ("t6", "maybe")]
    path = write_rows(tmp_path / "t.tsv", rows)
    table = text_table.read_table(path, class_names=["neg", "pos"])
    assert table.class_names == ("neg", "pos")
    assert table.texts == ("t1", "t2", "t3", "t4")
    assert table.labels == (1, 0, 0, 1)
    assert table.skipped == {"unknown label": 2}
    assert table.class_counts() == {"neg": 2, "pos": 2}


def test_bad_rows_are_skipped_and_counted_by_reason(tmp_path):
    content = (
        b"text\tlabel\n"
        + b"".join(b"good %d\t%d\n" % (i, i % 2) for i in range(8))
        + b"   \t1\n"  # empty text
        + b"no label\t\n"  # empty label
        + b"short row\n"  # no label column at all
        + b"bad \xff\xfe bytes\t1\n"  # not UTF-8: only this row is lost
        + b"caf\xc3\xa9 ok\t0\n"  # valid UTF-8
        + b"\n"  # blank lines are not rows
    )
    table = text_table.read_table(write(tmp_path / "t.tsv", content))
    assert len(table) == 9
    assert table.texts[-1] == "café ok"
    assert table.skipped == {"empty text": 1, "missing label": 2, "undecodable bytes": 1}



def test_mostly_bad_file_is_an_error_naming_file_and_reasons(tmp_path):
    path = write_rows(tmp_path / "bad.tsv", [("ok", "1")] + [("", "1")] * 5 + [("x", "")] * 4)
    with pytest.raises(UserError) as info:
        text_table.read_table(path)
    message = str(info.value)
    assert path in message
    assert "9 of 10 rows are unusable (empty text: 5, missing label: 4)" in message


@pytest.mark.parametrize(
    "content, expected",
    [
        ("", "is empty"),
        ("text,label\n", "has a header but no data rows"),
        ("text,label\n,a\n,b\n", "2 of 2 rows are unusable"),
        ("text,label\nonly,a\nsame,a\n", "one class only ('a')"),
    ],
)
def test_files_without_usable_data_give_one_clear_line(tmp_path, content, expected):
    path = write(tmp_path / "t.csv", content)
    with pytest.raises(UserError) as info:
        text_table.read_table(path)
    assert expected in str(info.value) and path in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_columns_list_the_real_columns(tmp_path):
    path = write(tmp_path / "t.csv", "Body,Stars\nfine,1\nmeh,0\n")
    with pytest.raises(UserError) as named:
        text_table.read_table(path, text_column="foo", label_column="Stars")
    assert str(named.value) == (
        f"{path} has no text column 'foo' (columns: Body, Stars): pass --text-column NAME."
    )
    with pytest.raises(UserError) as auto:
        text_table.read_table(path, text_column="body")
    assert "none of the usual label columns" in str(auto.value)
    assert "(columns: Body, Stars)" in str(auto.value)
    assert "--label-column" in str(auto.value)


def test_explicit_columns_are_case_insensitive(tmp_path):
    path = write(tmp_path / "t.csv", "id,Title,Body,Stars,label\n1,t1,fine,5,x\n2,t2,meh,1,y\n")
    table = text_table.read_table(path, text_column=" BODY", label_column="stars")
    assert table.texts == ("fine", "meh")
    assert table.class_names == ("1", "5")
    assert (table.text_column, table.label_column) == ("Body", "Stars")
    with pytest.raises(UserError, match="both 'label'"):  # label is auto-picked too
        text_table.read_table(path, text_column="LABEL")


def test_class_names_must_be_a_list(tmp_path):
    path = write_rows(tmp_path / "t.tsv", [("a", "0"), ("b", "1")])
    with pytest.raises(UserError, match="not the string 'neg,pos'"):
        text_table.read_table(path, class_names="neg,pos")


def test_find_splits_in_folders_and_files(tmp_path):
    both = tmp_path / "both"
    train = write_rows(both / "train.tsv", [("a", "0")])
    dev = write_rows(both / "dev.tsv", [("a", "0")])
    write_rows(both / "test.tsv", [("a", "0")])
    assert text_table.find_splits(str(both)) == (train, dev)

    upper = tmp_path / "upper"
    train = write(upper / "Train.CSV.gz", gzip.compress(b"text,label\n"))
    val = write(upper / "validation.csv", "text,label\n")
    assert text_table.find_splits(str(upper)) == (train, val)

    single = tmp_path / "single"
    only = write(single / "reviews.csv.gz", gzip.compress(b"text,label\n"))
    write(single / "SOURCE.md", "# notes")
    assert text_table.find_splits(str(single)) == (only, None)
    assert text_table.find_splits(only) == (only, None)


@pytest.mark.parametrize(
    "files, expected",
    [
        ([], "found no .csv/.tsv/.txt file"),
        (["a.csv", "b.tsv", "notes.md"], "found a.csv, b.tsv"),
        (["dev.tsv", "test.tsv"], "found dev.tsv, test.tsv"),
    ],
)
def test_find_splits_without_a_train_table(tmp_path, files, expected):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in files:
        write(folder / name, "text,label\n")
    with pytest.raises(UserError) as info:
        text_table.find_splits(str(folder))
    assert f"--data-dir {folder} has no train.tsv/train.csv" in str(info.value)
    assert expected in str(info.value)


def test_find_splits_of_a_missing_path(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        text_table.find_splits(str(tmp_path / "nope"))


def test_split_is_stratified_seeded_disjoint_and_ordered():
    table = in_memory([0] * 50 + [1] * 30 + [2] * 5 + [1])
    train, val = text_table.split(table, 0.2, seed=1)
    assert val.class_counts() == {"a": 10, "b": 6, "c": 1}
    assert train.class_counts() == {"a": 40, "b": 25, "c": 4}
    assert sorted(train.texts + val.texts) == sorted(table.texts)
    assert not set(train.texts) & set(val.texts)
    for part in (train, val):
        order = [table.texts.index(t) for t in part.texts]
        assert order == sorted(order)
        assert all(table.labels[i] == l for i, l in zip(order, part.labels))
    assert text_table.split(table, 0.2, seed=1) == (train, val)
    assert text_table.split(table, 0.2, seed=2)[1].texts != val.texts
    with pytest.raises(UserError, match="validation_split=1.0"):
        text_table.split(table, 1.0, seed=0)


def test_split_is_the_same_in_every_process():
    # Pinned: string seeds for random.Random do not depend on PYTHONHASHSEED.
    train, val = text_table.split(in_memory([0] * 5 + [1] * 5), 0.4, seed=0)
    assert val.texts == ("text 2", "text 4", "text 5", "text 7")


def test_single_row_class_stays_in_train():
    train, val = text_table.split(in_memory([0, 0, 0, 1, 2, 2]), 0.5, seed=0)
    assert train.class_counts() == {"a": 1, "b": 1, "c": 1}
    assert val.class_counts() == {"a": 2, "b": 0, "c": 1}


def test_limit_per_class():
    table = in_memory([0] * 10 + [1] * 3 + [2] * 7)
    limited = text_table.limit_per_class(table, 4, seed=0)
    assert limited.class_counts() == {"a": 4, "b": 3, "c": 4}
    order = [table.texts.index(t) for t in limited.texts]
    assert order == sorted(order)
    assert text_table.limit_per_class(table, 4, seed=0) == limited
    assert text_table.limit_per_class(table, 4, seed=1) != limited
    assert text_table.limit_per_class(table, 0, seed=0) is table
    with pytest.raises(UserError, match="max_per_class=-1"):
        text_table.limit_per_class(table, -1, seed=0)


def test_load_splits_reads_the_dev_file_with_train_columns_and_classes(tmp_path):
    folder = tmp_path / "data"
    write(folder / "train.csv", "Tweet,Polarity,Extra\n" + "".join(f"t{i},{'neg' if i % 3 else 'pos'},x\n" for i in range(30)))
    write(folder / "dev.csv", "tweet,polarity\nd1,pos\nd2,neg\nd3,neutral\nd4,neg\n")
    train, val, info = text_table.load_splits(str(folder))
    assert val.texts == ("d1", "d2", "d4")
    assert val.labels == (1, 0, 0)
    assert val.skipped == {"unknown label": 1}
    assert info == {
        "train_file": str(folder / "train.csv"),
        "val_file": str(folder / "dev.csv"),
        "split": "file",
        "text_column": "Tweet",
        "label_column": "Polarity",
        "class_names": ["neg", "pos"],
        "train_counts": {"neg": 20, "pos": 10},
        "val_counts": {"neg": 2, "pos": 1},
        "skipped": {"train": {}, "val": {"unknown label": 1}},
    }

    _, _, small = text_table.load_splits(str(folder), max_per_class=1, seed=3)
    assert small["train_counts"] == {"neg": 1, "pos": 1}
    assert small["val_counts"] == {"neg": 1, "pos": 1}


def test_load_splits_splits_a_single_file(tmp_path):
    path = write_rows(tmp_path / "all.tsv", [(f"t{i}", i % 2) for i in range(20)] + [("", 1)])
    train, val, info = text_table.load_splits(path, validation_split=0.3, seed=0)
    assert info["split"] == "random 0.3" and info["val_file"] is None
    assert info["train_counts"] == {"0": 7, "1": 7} and info["val_counts"] == {"0": 3, "1": 3}
    assert info["skipped"] == {"train": {"empty text": 1}, "val": {}}


def test_load_splits_needs_two_classes_in_train(tmp_path):
    path = write_rows(tmp_path / "t.tsv", [("x", "neg"), ("y", "neg")])
    with pytest.raises(UserError, match="one class only \\('neg'\\)"):
        text_table.load_splits(path, class_names=["neg", "pos"])


# --- the real data in ../shared/data -------------------------------------------------


def test_real_imdb_reviews():
    table = text_table.read_table(require_data("imdb", "imdb_reviews.csv.gz"))
    assert len(table) == 45_000 and table.skipped == {}
    assert table.class_names == ("negative", "positive")
    assert table.class_counts() == {"negative": 22_674, "positive": 22_326}
    assert (table.text_column, table.label_column) == ("review", "sentiment")
    assert table.texts[0].startswith("Raising Victor Vargas: A Review<br /><br />You know,")


def test_real_imdb_folder_gets_a_stratified_random_split():
    train, val, info = text_table.load_splits(require_data("imdb"), seed=0)
    assert info["split"] == "random 0.2"
    # The file repeats some reviews (406 texts, 418 extra copies): they go before the split,
    # so no validation review is also a training review.
    assert info["skipped"]["train"] == {"duplicate text": 418}
    assert len(train) + len(val) == 45_000 - 418
    assert not set(train.texts) & set(val.texts)
    n_val = sum(info["val_counts"].values())
    assert info["val_counts"] == {"negative": 4_474, "positive": 4_442} and n_val == 8_916
    assert info["train_counts"] == {"negative": 17_898, "positive": 17_768}
    assert val.texts[0].startswith("Raising Victor Vargas")  # row 0 of the file, pinned by seed 0


def test_drop_duplicates_keeps_the_first_copy_and_counts_the_rest():
    table = text_table.TextTable("t.csv", ("a", "b", "a", "c", "a"), (0, 1, 0, 1, 1), ("x", "y"), {"empty text": 2})
    out = text_table.drop_duplicates(table)
    assert out.texts == ("a", "b", "c") and out.labels == (0, 1, 1)
    assert out.skipped == {"empty text": 2, "duplicate text": 2}
    assert text_table.drop_duplicates(out) is out


def test_real_sst2_uses_its_dev_file():
    train, val, info = text_table.load_splits(require_data("sst2"))
    assert info["split"] == "file"
    assert info["train_file"].endswith("train.tsv") and info["val_file"].endswith("dev.tsv")
    assert len(train) == 67_349 and len(val) == 872
    assert info["class_names"] == ["0", "1"]
    assert info["train_counts"] == {"0": 29_780, "1": 37_569}
    assert info["val_counts"] == {"0": 428, "1": 444}
    assert info["skipped"] == {"train": {}, "val": {}}
    assert train.texts[0] == "hide new secretions from the parental units"


def test_dataset_names_name_integer_labels_and_string_labels_name_themselves(tmp_path):
    names = ("negative", "positive")
    ints = write_rows(tmp_path / "ints.tsv", [("a fine film", "1"), ("a dull film", "0")] * 3)
    table = text_table.read_table(ints, integer_label_names=names)
    assert table.class_names == names and table.labels[:2] == (1, 0)
    words = write_rows(tmp_path / "words.tsv", [("a fine film", "good"), ("a dull film", "bad")] * 3)
    table = text_table.read_table(words, integer_label_names=names)
    assert table.class_names == ("bad", "good") and table.labels[:2] == (1, 0)


def _reviews_with_films(path, films=12, per_film=5):
    rows = ["review,sentiment,movie"]
    for f in range(films):
        for r in range(per_film):
            rows.append(f"review {r} of film {f},{'positive' if (f + r) % 3 else 'negative'},tt{f:07d}")
    rows.append("a review of no known film,negative,")  # an empty group is a group of its own
    rows.append(",positive,tt0000001")  # skipped (empty text): its group must not shift the others
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_group_column_is_read_aligned_with_the_rows(tmp_path):
    table = text_table.read_table(_reviews_with_films(tmp_path / "imdb.csv"), group_column="movie")
    assert table.group_column == "movie" and len(table.groups) == len(table.texts) == 61
    assert table.texts[7] == "review 2 of film 1" and table.groups[7] == "tt0000001"
    assert table.groups[-1] == "row 61" and table.skipped == {"empty text": 1}
    assert text_table.read_table(tmp_path / "imdb.csv").groups is None
    with pytest.raises(UserError, match="no group column 'film'"):
        text_table.read_table(tmp_path / "imdb.csv", group_column="film")


@pytest.mark.parametrize("folds, fold", [(0, 0), (4, 2)])
def test_auto_groups_by_movie_so_no_film_is_on_both_sides(tmp_path, folds, fold):
    _reviews_with_films(tmp_path / "train.csv")
    train, val, info = text_table.load_splits(tmp_path, validation_split=0.25, seed=1, group_column="auto",
                                              folds=folds, fold=fold)
    assert info["group_column"] == "movie"
    assert not set(train.groups) & set(val.groups)
    assert len(train) + len(val) == 61
    assert info["split"] == ("random 0.25 by group" if not folds else "fold 2 of 4 by group")


def test_folds_cross_validate_the_train_file_and_the_dev_file_validates_the_refit(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(40)))
    (tmp_path / "dev.csv").write_text("text,label\n" + "".join(f"d{i},{i % 2}\n" for i in range(6)))
    seen = set()
    for fold in (1, 2, 3, 4):
        train, val, info = text_table.load_splits(tmp_path, folds=4, fold=fold, seed=0)
        assert len(val) == 10 and not set(val.texts) & seen and info["val_file"] is None
        assert val.class_counts() == {"0": 5, "1": 5}
        seen |= set(val.texts)
    assert len(seen) == 40
    train, val, info = text_table.load_splits(tmp_path, folds=4, fold=0, seed=0)
    assert len(train) == 40 and val.texts[0] == "d0" and info["split"].startswith("refit")


def test_real_imdb_grouped_by_movie_keeps_every_film_on_one_side():
    train, val, info = text_table.load_splits(require_data("imdb"), seed=0, group_column="auto")
    assert info["group_column"] == "movie" and info["split"] == "random 0.2 by group"
    assert not set(train.groups) & set(val.groups)
    assert 0.18 < len(val) / (len(train) + len(val)) < 0.22
    assert info["groups"]["train"] + info["groups"]["val"] == len(set(train.groups) | set(val.groups))


def test_folds_cut_the_rows_max_per_class_keeps(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(200)))
    kept, seen = None, set()
    for fold in (1, 2, 3, 4):
        train, val, _ = text_table.load_splits(tmp_path, folds=4, fold=fold, seed=0, max_per_class=20)
        assert (len(train), len(val)) == (30, 10)  # the same 40 rows each time, cut in 4 folds
        assert kept is None or set(train.texts) | set(val.texts) == kept
        kept = set(train.texts) | set(val.texts)
        seen |= set(val.texts)
    assert seen == kept
