"""Prediction tables: a VLMEvalKit prediction file (`.xlsx` as run.py writes it, or `.tsv`/`.csv`)
read into rows, each remembering where it came from so that an error can name file:line:column.

Cells are text as the file has them, except that an integral number read from a spreadsheet is
written without ".0" (VLMEvalKit's pandas reads an xlsx number cell 5 as 5, and scores str(5)),
and that a `prediction` or `answer` cell pandas reads as missing (empty, "None", "NA", "N/A",
"null", "nan", …: `PANDAS_NA`) is the text "nan", which is what VLMEvalKit scores after its
`str(x)`: an empty reply is "nan" to it, and OCRBench then finds the answer "a" in it.
Header names are lower-cased except the option letters A-Z, as VLMEvalKit does before scoring.
"""

from __future__ import annotations

import ast
import csv
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sicog.utils.io import SicogError

#: cells pandas reads as missing (NaN); VLMEvalKit drops such options and categories
MISSING = frozenset({"", "nan", "NaN", "NAN", "None", "null", "NULL", "<NA>", "N/A", "n/a", "#N/A", "NA"})


@dataclass
class Row:
    """One prediction row: its cells by (normalised) column name, and where it is."""

    cells: dict[str, str]
    source: str
    line: int
    extra: dict = field(default_factory=dict)

    def __getitem__(self, column: str) -> str:
        return self.cells[column]

    def get(self, column: str, default: str | None = None) -> str | None:
        value = self.cells.get(column)
        return default if value is None or is_missing(value) else value

    def where(self, column: str) -> str:
        """`file:line:column` of one cell, for error messages."""
        return f"{self.source}:{self.line}:{column}"

    @property
    def index(self) -> str:
        return self.cells["index"]


#: pandas' default missing-value strings (read_csv / read_excel `na_values`)
PANDAS_NA = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                       "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
#: columns VLMEvalKit scores as str(cell)
AS_TEXT = ("prediction", "answer")


def as_vlmevalkit_reads(text: str) -> str:
    """A reply or answer as VLMEvalKit holds it after reading its table back: "nan" when pandas
    reads the cell as missing."""
    return "nan" if text in PANDAS_NA else text


def is_missing(value) -> bool:
    return value is None or str(value).strip() in MISSING


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _column_name(name) -> str:
    name = _text(name).strip()
    return name if name in string.ascii_uppercase and len(name) == 1 else name.lower()


def read_table(path: str | Path, required: tuple[str, ...] = ("index", "prediction")) -> list[Row]:
    """The rows of a prediction table; every `required` column must be there (exit-2 errors name
    the file and the missing column, or file:line for a malformed row)."""
    path = Path(path)
    if not path.is_file():
        raise SicogError(f"{path}: no such prediction file")
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        from openpyxl import load_workbook

        sheet = load_workbook(path, read_only=True, data_only=True).active
        raw = [list(r) for r in sheet.iter_rows(values_only=True)]
    elif suffix in (".tsv", ".csv"):
        csv.field_size_limit(sys.maxsize)
        with open(path, encoding="utf-8", newline="") as fh:
            raw = list(csv.reader(fh, delimiter="\t" if suffix == ".tsv" else ","))
    else:
        raise SicogError(f"{path}: a prediction table is .xlsx, .tsv or .csv")
    if not raw:
        raise SicogError(f"{path}:1: empty file, no header")
    header = [_column_name(h) for h in raw[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise SicogError(f"{path}:1: missing column {missing[0]!r} (columns: {', '.join(header)})")
    rows, seen = [], {}
    for number, cells in enumerate(raw[1:], start=2):
        if all(c is None or _text(c) == "" for c in cells):
            continue
        if len(cells) != len(header):
            raise SicogError(f"{path}:{number}: {len(cells)} cells, the header has {len(header)}")
        row = Row({h: _text(c) for h, c in zip(header, cells)}, str(path), number)
        for column in AS_TEXT:
            if column in row.cells:
                row.cells[column] = as_vlmevalkit_reads(row.cells[column])
        if row.index in seen:
            raise SicogError(f"{row.where('index')}: index {row.index!r} again (first at line {seen[row.index]})")
        seen[row.index] = number
        rows.append(row)
    return rows


def answer_list(cell: str) -> list[str] | None:
    """The answers of a cell that holds a Python list literal (`['a', 'b']`), else None
    (VLMEvalKit evaluates the cell and takes it when it is a list)."""
    text = cell.strip()
    if not text.startswith("["):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return [str(v) for v in value] if isinstance(value, list) else None


def answers_of(row: Row) -> list[str]:
    """The accepted answers of an open question: the list in `answer`, or the cell itself."""
    cell = row["answer"]
    return answer_list(cell) or [cell]


def group_by(rows: list[Row], column: str) -> dict[str, list[Row]]:
    """Rows per value of `column` (missing values left out), in sorted order."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        value = r.get(column)
        if value is not None:
            groups.setdefault(value, []).append(r)
    return dict(sorted(groups.items()))
