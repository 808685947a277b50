"""Run the real VLMEvalKit's evaluation of one dataset on one prediction file, in VLMEvalKit's own
environment, and print its results as JSON (a helper of benchmarks/vlmeval_agreement.py --scorers).

    python benchmarks/_vlmevalkit_score.py NAME BENCHMARK.tsv PRED.xlsx JUDGE_MODEL|exact_matching

The dataset class is VLMEvalKit's own for NAME; only where its TSV comes from is changed (ours,
not a download), so everything `evaluate` does is the package's. Per-item results are read from
the intermediate files `evaluate` writes beside PRED.xlsx.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sicog.eval.vlmeval_import import import_vlmeval  # noqa: E402


def main() -> int:
    name, tsv, pred, judge = sys.argv[1:5]
    import_vlmeval()
    import pandas as pd
    import vlmeval.dataset as D
    from vlmeval.smp import load

    classes = {"MME": D.ImageYORNDataset, "POPE": D.ImageYORNDataset, "DocVQA_VAL": D.ImageVQADataset,
               "ChartQA_TEST": D.ImageVQADataset, "OCRBench": D.OCRBench, "MMVet": D.MMVet,
               "MathVista_MINI": D.MathVista}
    base = classes.get(name, D.ImageMCQDataset)

    class Local(base):
        def load_data(self, dataset):
            return load(tsv)

    ds = Local(dataset=name)
    result = ds.evaluate(pred, model=judge, nproc=2)
    if isinstance(result, pd.DataFrame):
        result = result.to_dict(orient="records")
    items = {}
    stem = pred[: -len(".xlsx")]
    for suffix, cols in (("_exact_matching_result.xlsx", ("hit",)), ("_auxmatch.xlsx", ("extracted", "score")),
                         (f"_{judge}.xlsx", ("score", "res", "log"))):
        path = Path(stem + suffix)
        if path.exists():
            df = load(str(path))
            for _, row in df.iterrows():
                items[str(row["index"])] = {c: (None if pd.isna(row[c]) else
                                                row[c].item() if hasattr(row[c], "item") else row[c])
                                            for c in cols if c in df.columns}
    print("@@RESULT@@" + json.dumps({"result": result, "items": items}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
