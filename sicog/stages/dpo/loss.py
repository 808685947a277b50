"""The preference objective, as pure tensor functions (testable without a model).

- `sequence_logps`: per-row sum of the reply tokens' log-probabilities (and their count), from
  logits and labels (-100 = not a reply token), with TRL's memory-lean `selective_log_softmax`.
- `preference_loss`: DPO's sigmoid loss -log sigma(beta * delta), or IPO's squared loss
  (delta per reply token - 1 / (2 beta))^2 with the per-token normalisation TRL uses, where
  delta = (log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected)); plus
  optionally `sft_weight` x the mean per-token NLL of the chosen replies (RPO-style).
- `pair_metrics`: implicit rewards beta * (log pi - log ref), reward accuracy (a tie counts one
  half, so policy = reference scores 0.5), margin, and the log-probs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_TYPES = ("sigmoid", "ipo")


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of log p(token) over each row's reply tokens, number of reply tokens per row)."""
    from trl.trainer.utils import selective_log_softmax

    labels = labels[:, 1:]
    logits = logits[:, :-1, :]
    mask = labels != -100
    per_token = selective_log_softmax(logits.float(), labels.masked_fill(~mask, 0))
    return (per_token * mask).sum(-1), mask.sum(-1)


def preference_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                    ref_rejected: torch.Tensor, beta: float, loss_type: str = "sigmoid",
                    chosen_tokens: torch.Tensor | None = None, rejected_tokens: torch.Tensor | None = None,
                    sft_weight: float = 0.0) -> torch.Tensor:
    """Mean loss over the batch of pairs (see the module docstring); tokens counts are needed for
    IPO and the SFT term."""
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))
    elif loss_type == "ipo":
        if chosen_tokens is None or rejected_tokens is None:
            raise ValueError("the IPO loss needs the reply token counts")
        delta = chosen_ratio / chosen_tokens.clamp(min=1) - rejected_ratio / rejected_tokens.clamp(min=1)
        losses = (delta - 1.0 / (2.0 * beta)) ** 2
    else:
        raise ValueError(f"unknown loss type {loss_type!r} (one of {LOSS_TYPES})")
    loss = losses.mean()
    if sft_weight:
        if chosen_tokens is None:
            raise ValueError("the SFT term needs the chosen reply token counts")
        loss = loss + sft_weight * (-policy_chosen.sum() / chosen_tokens.sum().clamp(min=1))
    return loss


def pair_metrics(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                 ref_rejected: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
    """Per-pair tensors: rewards/chosen, rewards/rejected, rewards/margin, rewards/accuracy,
    logps/chosen, logps/rejected (averaged by the caller)."""
    chosen = beta * (policy_chosen - ref_chosen).detach()
    rejected = beta * (policy_rejected - ref_rejected).detach()
    margin = chosen - rejected
    accuracy = (margin > 0).float() + 0.5 * (margin == 0).float()
    return {"rewards/chosen": chosen, "rewards/rejected": rejected, "rewards/margin": margin,
            "rewards/accuracy": accuracy, "logps/chosen": policy_chosen.detach(),
            "logps/rejected": policy_rejected.detach()}
