"""The result files of a multiple-choice evaluation, as VLMEvalKit writes them.

`<prefix>_predictions.jsonl` (one line per item: index, question, options, prediction,
extracted, answer, correct, category, and the letter VLMEvalKit's exact matching reads with
its hit for generated replies: extracted_vlmevalkit, correct_vlmevalkit), `<prefix>_result.xlsx` and `<prefix>_result.csv` (the
TSV's columns without the image, plus prediction, extracted, hit); each written atomically.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from sicog.eval.mcq import McqPrediction
from sicog.utils.io import atomic_write, write_jsonl


def _cell(value):
    """Index-like integers as numbers (as VLMEvalKit's files have them), everything else as text."""
    if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) < 16:
        return int(value)
    return value


def result_table(preds: Sequence[McqPrediction]) -> tuple[list[str], list[list]]:
    """(header, rows) of the result file: original columns (no image) + prediction, extracted, hit."""
    columns: list[str] = []
    for p in preds:
        for k in p.item.row:
            if k not in columns:
                columns.append(k)
    header = columns + ["prediction", "extracted", "hit"]
    rows = [
        [_cell(p.item.row.get(k, "")) for k in columns]
        + [p.prediction, p.extracted or "", int(p.correct)]
        for p in preds
    ]
    return header, rows


def prediction_records(preds: Sequence[McqPrediction], vlmevalkit: bool = True) -> list[dict]:
    """The per-item JSONL records of `mcq_predictions.jsonl` (with `vlmevalkit`: VLMEvalKit's reading too)."""
    records = [
        {"index": _cell(p.item.index), "question": p.item.question, "options": p.item.options,
         "prediction": p.prediction, "extracted": p.extracted, "answer": p.item.answer,
         "correct": p.correct, "category": p.item.category}
        for p in preds
    ]
    if vlmevalkit:
        for r, p in zip(records, preds):
            r["extracted_vlmevalkit"] = p.vlmevalkit_choice
            r["correct_vlmevalkit"] = p.vlmevalkit_choice == p.item.answer
    return records


def _xlsx_safe(value):
    """openpyxl rejects control characters and cells over 32,767 characters."""
    if not isinstance(value, str):
        return value
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", value)[:32767]


def write_mcq_outputs(preds: Sequence[McqPrediction], out_dir: str | Path, prefix: str = "mcq",
                      vlmevalkit: bool = True) -> dict[str, Path]:
    """Write `<prefix>_predictions.jsonl`, `<prefix>_result.xlsx` and `<prefix>_result.csv`, atomically."""
    from openpyxl import Workbook

    out_dir = Path(out_dir)
    paths = {
        "predictions": out_dir / f"{prefix}_predictions.jsonl",
        "xlsx": out_dir / f"{prefix}_result.xlsx",
        "csv": out_dir / f"{prefix}_result.csv",
    }
    write_jsonl(paths["predictions"], prediction_records(preds, vlmevalkit))
    header, rows = result_table(preds)
    wb = Workbook()
    ws = wb.active
    ws.title = "results"
    ws.append(header)
    for row in rows:
        ws.append([_xlsx_safe(v) for v in row])
    with atomic_write(paths["xlsx"], "wb") as fh:
        wb.save(fh)
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    with atomic_write(paths["csv"]) as fh:
        fh.write(buf.getvalue())
    return paths
