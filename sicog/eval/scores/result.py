"""What every scorer returns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Scores:
    """A benchmark's figures as VLMEvalKit reports them (`metrics`, percentages where VLMEvalKit
    gives percentages), the one the paper quotes (`headline`), and per-item scores.

    `items` maps an item id (the row index; MMBench: the circular group) to its score. When
    `paired` is true the headline is `scale` × the mean of `items` (accuracy, ANLS, MM-Vet's
    graded score, OCRBench's count with scale = n), so two models' headlines can be compared item
    by item; otherwise (F1, MME's sums) only by resampling items (`recompute`, which takes a
    list of item ids, repeats allowed, and returns the headline over them)."""

    benchmark: str
    kind: str
    headline: str
    metrics: dict[str, float]
    items: dict[str, float] = field(default_factory=dict)
    paired: bool = True
    scale: float = 100.0
    recompute: object = field(default=None, repr=False)
    details: list[dict] = field(default_factory=list, repr=False)

    @property
    def value(self) -> float:
        return self.metrics[self.headline]

    def as_dict(self) -> dict:
        return {"benchmark": self.benchmark, "kind": self.kind, "headline": self.headline, "value": self.value,
                "metrics": self.metrics, "n_items": len(self.items), "paired": self.paired}
