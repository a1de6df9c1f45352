"""What the benchmark scripts share: run one CLI training, read a finished run, name the machine,
and record a printed table in benchmarks/results/<name>.md.

A results file is a title, a generated intro, the table and a `## Notes` section. Rows are keyed
by their first column: a script that measures some rows again replaces those rows and keeps the
others, and every row says the commit and day it was measured at. The notes are written by hand
and kept as they are.
"""

import argparse
import datetime
import importlib
import os
import platform
import re
import shlex
import subprocess
import sys
import time

from tf_finetune import files
from tf_finetune.errors import UserError
from tf_finetune.run_dir import RunDir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "runs", "benchmarks")
DEFAULT_DATA = os.environ.get("TF_FINETUNE_DATA") or os.path.join(REPO, "..", "shared", "data")
RESULTS = os.path.join(REPO, "benchmarks", "results")
NOTES = "## Notes"
STAMP_NOTE = (
    "commit/date: the commit whose README first recorded the row (the code measured is that commit "
    "or its parent); rows re-run since say the commit they ran at (`+dirty`: with uncommitted "
    "changes to tracked files)."
)


COMMANDS = ("train", "distill")  # what a row may start with (default: train)


def train(project, name, args, out_root, data_root):
    """Runs `python -m projects.<project> train ARGS --output-dir OUT/<name>` (or the command
    ARGS starts with, e.g. `distill`); returns the run dir."""
    run_dir = os.path.join(out_root, name)
    command_name, args = (args[0], args[1:]) if args and args[0] in COMMANDS else ("train", args)
    command = [sys.executable, "-m", f"projects.{project}", command_name, *args, "--output-dir", run_dir]
    env = dict(os.environ, TF_FINETUNE_DATA=os.path.abspath(data_root))
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    start = time.time()
    subprocess.run(command, cwd=REPO, env=env, check=True)
    print(f"== {name}: finished in {time.time() - start:.0f} s", flush=True)
    return run_dir


def read_run(run_dir):
    """(name, metrics, config dict, run record) of a finished run directory.

    Read through `tf_finetune.run_dir`, the one place that knows a run's files; the config
    comes back with today's defaults for settings the run predates.
    """
    run = RunDir(run_dir)
    record = run.read_record("run")
    project = importlib.import_module(f"projects.{record['project']}.project").PROJECT
    config = run.read_config(project.config_class).to_dict()
    return os.path.basename(run.path), run.read_metrics(), config, record


def train_args(record):
    """The `train ...` (or `distill ...`) part of the command a run was started with."""
    words = record["command"].split(" ")
    start = next((i for i, word in enumerate(words) if word in COMMANDS), -1)
    return " ".join(words[start:]) if start >= 0 else record["command"]


def machine():
    return (f"Machine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}.")


# --- Results files ---


def stamp():
    """{"commit": ..., "date": ...}: the checkout's short HEAD (`+dirty` when tracked files have
    uncommitted changes, other than the results files the benchmarks write) and today. Taken
    when a script starts, so that the rows name the code that ran even if the checkout moves
    during a long run."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        changed = [line[3:] for line in git("status", "--porcelain").splitlines() if not line.startswith("??")]
        if any(not path.startswith("benchmarks/results/") for path in changed):
            commit += "+dirty"
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"commit": commit, "date": datetime.date.today().isoformat()}


def add_bert_sst2_args(parser):
    """`--preset` (the offline MiniLM-L6) and `--data-dir` (SST-2): the BERT speed scripts' data."""
    parser.add_argument("--preset", default=os.path.join(DEFAULT_DATA, "weights", "all-MiniLM-L6-v2"))
    parser.add_argument("--data-dir", default=os.path.join(DEFAULT_DATA, "sst2"))


def add_no_write(parser):
    parser.add_argument("--no-write", action="store_true",
                        help="Only print the table; do not record it in benchmarks/results/.")


def about(doc):
    """What a script measures: the paragraphs of its docstring before the indented usage block."""
    paragraphs = []
    for paragraph in doc.strip().split("\n\n"):
        if paragraph.startswith("    "):
            break
        paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


def script_command():
    """The command line this script was started with, as `python benchmarks/NAME.py ARGS`."""
    return shorten(shlex.join(["python", f"benchmarks/{os.path.basename(sys.argv[0])}", *sys.argv[1:]]))


def shorten(text):
    """`text` with this checkout's paths written relative to it (`runs/...`, `../shared/data/...`),
    so that a results file does not name one machine's folders."""
    text = text.replace(REPO + os.sep, "")
    parent = os.path.dirname(REPO)
    if parent != os.path.dirname(parent):  # Not the file system's root.
        text = text.replace(parent + os.sep, ".." + os.sep)
    return text


def record(name, title, intro, table, cells):
    """Records a printed markdown `table` in RESULTS/<name>.md; returns the file's path.

    Rows of the file named like a new row (first column) are replaced by the new rows of that
    name, in place; other rows are kept; new names are appended. Everything from `## Notes` on
    is kept verbatim. The file is replaced atomically.

    Args:
        name: the file's name without `.md`.
        title: its first line, after `# `.
        intro: markdown paragraphs between the title and the table, written anew every time
            (`STAMP_NOTE` and the machine follow them).
        table: the table as printed: header, separator, rows.
        cells: column -> value appended to every new row (e.g. `stamp()`).
    """
    path = os.path.join(RESULTS, f"{name}.md")
    header, separator, rows = _parse_table(table.splitlines())
    header, separator = header + list(cells), separator + ["---"] * len(cells)
    rows = [[shorten(cell) for cell in row] + list(cells.values()) for row in rows]
    old_header, old_rows, notes = _read_results(path)
    rows = _merge_rows(_align(old_rows, old_header, header, path), rows)
    text = "\n\n".join([f"# {title}", intro, STAMP_NOTE, machine(),
                        "\n".join(_row(line) for line in [header, separator, *rows]), notes])
    files.atomic_write_bytes(text.rstrip("\n").encode("utf-8") + b"\n", path)
    return path


def save(args, name, title, intro, table, cells):
    """`record` unless `--no-write` was given, then a last line naming the file."""
    if args.no_write:
        return
    try:
        path = record(name, title, intro, table, cells)
    except UserError as e:
        sys.exit(f"error: {e}")
    print(f"Table recorded in {os.path.relpath(path, REPO)}")


def save_speed(args, name, title, doc, table, measured):
    """`save` for the scripts that measure one table per invocation: each row also records the
    script's command line, since its options (sizes, epochs) shape the figures."""
    save(args, name, title, speed_intro(doc), table, {"command": f"`{script_command()}`", **measured})


def speed_intro(doc):
    """The results file's intro for a script that measures one table per invocation."""
    return about(doc) + (
        f"\n\nWritten by `python benchmarks/{os.path.basename(sys.argv[0])}` (each row's `command` "
        "column gives its options): a run replaces the rows it prints, keyed by the first column, "
        "and keeps the others; `--no-write` only prints.")


def accuracy_intro(doc):
    """The results file's intro for an accuracy script (`main`): a row per training run."""
    return about(doc) + (
        f"\n\nWritten by `python benchmarks/{os.path.basename(sys.argv[0])}`, which trains every row "
        "(`--rows NAME...`: those rows; `--seeds N...`: once per seed, as `NAME_seedN`) and "
        "replaces those rows here, keeping the others; `--table-only RUN...` records finished runs "
        "and `--no-write` only prints. The `command` column is each row's training command.")


def _cells(line):
    """The cells of a markdown table line (an escaped `\\|` stays inside its cell)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _row(cells):
    return "| " + " | ".join(cells) + " |"


def _parse_table(lines):
    """(header, separator, rows) of the first markdown table among `lines`, as lists of cells."""
    table = []
    for line in lines:
        if line.startswith("|"):
            table.append(_cells(line))
        elif table:
            break
    if len(table) < 2:
        return [], [], []
    return table[0], table[1], table[2:]


def _read_results(path):
    """(header, rows, notes) of a results file: ([], [], an empty notes section) if there is none."""
    if not os.path.isfile(path):
        return [], [], NOTES + "\n"
    with open(path, encoding="utf-8") as f:
        text = f.read()
    notes = re.search(rf"^{NOTES}[ \t]*$", text, flags=re.MULTILINE)
    header, _, rows = _parse_table(text[:notes.start() if notes else len(text)].splitlines())
    return header, rows, text[notes.start():] if notes else NOTES + "\n"


def _align(rows, old_header, header, path):
    """`rows` of a file with columns `old_header`, rearranged to `header` (new columns empty).

    A column the table no longer prints would lose its figures: that is an error.
    """
    lost = [column for column in old_header if column not in header]
    if lost:
        raise UserError(f"{os.path.relpath(path, REPO)} has column(s) {', '.join(lost)} that the table no "
                        "longer prints: move those figures into its notes by hand, or pass --no-write.")
    where = {column: i for i, column in enumerate(old_header)}
    return [[row[where[column]] if column in where and where[column] < len(row) else "" for column in header]
            for row in rows]


def _merge_rows(old, new):
    """`old` with each name's rows replaced by the `new` rows of that name; new names appended."""
    new_by_name = {}
    for row in new:
        new_by_name.setdefault(row[0], []).append(row)
    merged, placed = [], set()
    for row in old:
        if row[0] not in new_by_name:
            merged.append(row)
        elif row[0] not in placed:
            merged.extend(new_by_name[row[0]])
            placed.add(row[0])
    return merged + [row for row in new if row[0] not in placed]


# --- The accuracy scripts' command line ---


def main(doc, project, rows, table, *, title, results=None):
    """The accuracy benchmarks' command line: run the chosen rows (or read finished runs), print
    the table, and record it in benchmarks/results/<results>.md (default: <project>.md).

    Args:
        doc: the script's docstring (its first line is the description; the paragraphs before
            its usage block open the results file).
        project: the project package name, also the results file's name.
        rows: row name -> `train` arguments; `{data}` is replaced by the data root and
            `{name}` by the run directory of row `name` (for rows that start from another).
        table: `(run_dirs) -> markdown table`.
        title: the results file's title.
        results: the results file's name, when it is not the project's.
    """
    measured = stamp()  # Before training: the code the rows run.
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(rows), choices=list(rows))
    parser.add_argument("--out", default=DEFAULT_OUT, help="Runs go to OUT/<project>/<row>.")
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--seeds", nargs="+", type=int, metavar="SEED",
                        help="Run each row once per seed (run names get a _seed<N> suffix).")
    parser.add_argument("--table-only", nargs="+", metavar="RUN",
                        help="Print and record the table of finished runs (commit and date: the "
                             "checkout's and today's).")
    add_no_write(parser)
    args = parser.parse_args()
    if args.table_only:
        run_dirs = args.table_only
    else:
        args.out = os.path.join(args.out, project)  # row names repeat across projects (sst2)
        fill = {"data": os.path.abspath(args.data), **{name: os.path.join(args.out, name) for name in rows}}
        run_dirs = []
        for name in args.rows:
            row = [a.format(**fill) for a in rows[name]]
            for seed in args.seeds or [None]:
                if seed is None:
                    run_dirs.append(train(project, name, row, args.out, args.data))
                else:
                    run_dirs.append(train(project, f"{name}_seed{seed}", [*row, "--seed", str(seed)],
                                          args.out, args.data))
    try:
        text = table(run_dirs)
    except UserError as e:
        sys.exit(f"error: {e}")
    print()
    print(text)
    print()
    print(machine())
    save(args, results or project, title, accuracy_intro(doc), text, measured)
