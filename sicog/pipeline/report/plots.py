"""PNG plots of a pipeline report: accuracy per arm / category / round, curation score histogram."""

from __future__ import annotations

from pathlib import Path


def make_plots(report: dict, out_dir: Path, score_lists: dict[str, list[float]] | None = None) -> list[str]:
    """accuracy.png (per arm), accuracy_per_category.png, curation_scores.png; returns file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    arms = report["arms"]
    names = [n for n in arms if arms[n].get("benchmark")]
    if names:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        acc = [100 * (arms[n]["benchmark"]["accuracy"] or 0) for n in names]
        ax.bar(names, acc, color=["#888", "#2a7", "#c84", "#46c"][: len(names)])
        for i, v in enumerate(acc):
            ax.text(i, v + 0.5, f"{v:.1f}", ha="center", fontsize=8)
        ax.set_ylabel("benchmark accuracy (%)")
        ax.set_title("accuracy per arm")
        fig.tight_layout()
        fig.savefig(out_dir / "accuracy.png", dpi=100)
        plt.close(fig)
        made.append("accuracy.png")
        cats = sorted({k for n in names for k in arms[n]["benchmark"].get("per_category", {})})
        if cats:
            fig, ax = plt.subplots(figsize=(7, 3.4))
            width = 0.8 / len(names)
            for i, n in enumerate(names):
                pc = arms[n]["benchmark"]["per_category"]
                ax.bar([j + i * width for j in range(len(cats))], [100 * (pc.get(c) or 0) for c in cats],
                       width=width, label=n)
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cats))], cats)
            ax.set_ylabel("accuracy (%)")
            ax.legend(fontsize=8)
            ax.set_title("accuracy per question category")
            fig.tight_layout()
            fig.savefig(out_dir / "accuracy_per_category.png", dpi=100)
            plt.close(fig)
            made.append("accuracy_per_category.png")
    if score_lists is not None:
        score_lists = score_lists or {"(no item was scored)": []}
        fig, axes = plt.subplots(1, len(score_lists), figsize=(4 * len(score_lists), 3), squeeze=False)
        for ax, (label, scores) in zip(axes[0], score_lists.items()):
            if scores:
                ax.hist(scores, bins=30, color="#46c")
            ax.set_title(f"best self-consistency score: {label}", fontsize=9)
            ax.set_xlabel("score")
        fig.tight_layout()
        fig.savefig(out_dir / "curation_scores.png", dpi=100)
        plt.close(fig)
        made.append("curation_scores.png")
    if (report.get("rounds_configured") or 1) > 1:
        fig, ax = plt.subplots(figsize=(5, 3))
        seq = [r for r in report["rounds"] if r["arm"] in ("base", "sicog")]
        ax.plot([r["round"] for r in seq], [100 * (r["accuracy"] or 0) for r in seq], marker="o")
        ax.set_xlabel("round (0 = base)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title("accuracy round by round")
        fig.tight_layout()
        fig.savefig(out_dir / "accuracy_rounds.png", dpi=100)
        plt.close(fig)
        made.append("accuracy_rounds.png")
    return made


