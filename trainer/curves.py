"""The training curve: train loss per step, eval loss at each evaluation, the kept checkpoint."""

from __future__ import annotations

from pathlib import Path


def draw_training_curve(log_history: list[dict], path: Path, title: str, best_step: int | None, eval_loss_before: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "eval_loss" not in h]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    if eval_loss_before is not None:
        evals = [(0, eval_loss_before)] + evals
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if train:
        ax.plot(*zip(*train), color="tab:blue", alpha=0.6, linewidth=1, label="train loss")
    if evals:
        ax.plot(*zip(*evals), color="tab:orange", marker="o", linewidth=2, label="eval loss")
    best = [(s, l) for s, l in evals if s == best_step]
    if best:
        ax.scatter(*zip(*best), s=160, facecolors="none", edgecolors="tab:red", linewidths=2, zorder=3,
                   label=f"kept: step {best_step}, eval {best[0][1]:.3f}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (persona replies only)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
