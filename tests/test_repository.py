"""The repository stands alone: its code, configs and scripts point only at documents it contains."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("sicog", "configs", "training_scripts", "recap_scripts", "quality_evaluation", "scripts", "benchmarks",
           "training_data_annotation")
SUFFIXES = {".py", ".yaml", ".yml", ".sh", ".json", ".toml", ".md"}
OUTSIDE = re.compile(r"DESIGN\.md|(?<!docs/)\bMETHOD\.md|DEMO-NOTES|\bissue\s*#?\d+|\bthe (loop |house )?issue\b",
                     re.IGNORECASE)
DOC_REF = re.compile(r"\bdocs/([\w.-]+\.md)")


def _files():
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts:
                yield path


def test_no_reference_to_documents_outside_the_repository():
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in _files()
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if OUTSIDE.search(line)]
    assert not hits, "\n".join(hits)


def test_every_docs_reference_resolves():
    missing = sorted({f"{p.relative_to(ROOT)} -> docs/{m}" for p in [*_files(), ROOT / "README.md"]
                      for m in DOC_REF.findall(p.read_text(encoding="utf-8")) if not (ROOT / "docs" / m).is_file()})
    assert not missing, "\n".join(missing)


def test_the_patterns_catch_what_they_should():
    for text in ("see DESIGN.md §4", "(METHOD.md step 3)", "DEMO-NOTES", "the flags (issue 4)", "the loop issue's"):
        assert OUTSIDE.search(text), text
    assert not OUTSIDE.search("see docs/method.md") and not OUTSIDE.search("a known issue with tqdm")


def test_the_readme_step_table_names_code_that_exists():
    """The README's step table has a code column: every path in it is a file or folder of the repository."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("| step | command | code |"):].split("\n\n", 1)[0].splitlines()[2:]
    assert len(table) >= 7, table
    for row in table:
        code = row.split(" | ")[2]
        paths = re.findall(r"`([^`]+)`", code)
        assert paths, f"a step without code: {row}"
        missing = [p for p in paths if not (ROOT / p).exists()]
        assert not missing, f"{row.split(' | ')[0]}: {missing}"
