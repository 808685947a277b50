"""Benchmark scores computed the way VLMEvalKit computes them, one module per benchmark type.

Every scorer reads a VLMEvalKit prediction table (the benchmark's columns without `image`, plus
`prediction`: what run.py writes as `<model>_<dataset>.xlsx`, or the same as a TSV) and returns a
`sicog.eval.scores.result.Scores`: the metrics VLMEvalKit reports, the paper's headline figure,
and per-item scores for paired comparisons. `sicog.eval.scores.registry` maps a VLMEvalKit
dataset name (MMBench_DEV_EN, POPE, DocVQA_VAL, MMVet …) to its scorer.

The rules are our own code, written from VLMEvalKit's evaluation (nvidia-vlmeval 26.3) and checked
against the real package by `benchmarks/vlmeval_agreement.py --scorers` (docs/evaluation.md).
"""
