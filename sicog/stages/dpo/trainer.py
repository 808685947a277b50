"""The DPO trainer: `SicogTrainer` (resume, length grouping, per-part learning rates, throughput)
with the preference loss of `sicog.stages.dpo.loss` and its metrics in every log line.

A batch holds B pairs as 2B rows (chosen rows, then rejected rows; `sicog.data.pairs.PairCollator`),
so the policy runs once per batch. The reference log-probs come from one of three places
(`Reference`): a table computed once before training (`precompute_reference`), a frozen copy of
the starting model, or the LoRA-wrapped policy with its adapter disabled.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict

import torch

from sicog.stages.dpo.loss import pair_metrics, preference_loss, sequence_logps
from sicog.stages.trainer import SicogTrainer

log = logging.getLogger(__name__)


class Reference:
    """Where a batch's reference log-probs come from: `table` ([N, 2] by pair id), `model` (a
    frozen module, DeepSpeed-wrapped when training is) or `adapter` (the policy, adapter off)."""

    def __init__(self, kind: str, table: torch.Tensor | None = None, model=None):
        self.kind, self.table, self.model = kind, table, model

    def logps(self, policy, inputs: dict, pair_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reference log-probs of the chosen rows, of the rejected rows)."""
        if self.kind == "precomputed":
            ref = self.table[pair_ids.cpu()].to(inputs["input_ids"].device)
            return ref[:, 0], ref[:, 1]
        with torch.no_grad():
            if self.kind == "adapter":
                from accelerate.utils import extract_model_from_parallel

                with extract_model_from_parallel(policy).disable_adapter():
                    logits = policy(**inputs, use_cache=False).logits
            else:
                logits = self.model(**inputs, use_cache=False).logits
        logps, _ = sequence_logps(logits, inputs["labels"])
        return logps.chunk(2)


def forward_pairs(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Run the model on a pair batch: (log-probs per row, reply tokens per row, model inputs)."""
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "pair_ids")}
    logits = model(**inputs, use_cache=False).logits
    logps, tokens = sequence_logps(logits, batch["labels"])
    return logps, tokens, {**inputs, "labels": batch["labels"]}


class DPOTrainer(SicogTrainer):
    """See the module docstring; `dpo` is the config's `DPOSettings`."""

    # the loss is a mean over the micro-batch's pairs: the Trainer divides it by the
    # gradient-accumulation steps (LLaVA's forward takes **kwargs, which would make it assume
    # a loss already normalised over the whole accumulated batch)
    loss_is_scaled_for_ga = False

    def __init__(self, *args, dpo, reference: Reference, **kwargs):
        super().__init__(*args, **kwargs)
        self.dpo = dpo
        self.reference = reference
        self._metrics: dict[str, list[float]] = defaultdict(list)
        if reference.model is not None:
            if self.is_deepspeed_enabled:
                from trl.models import prepare_deepspeed

                reference.model = prepare_deepspeed(reference.model, self.accelerator)
            else:
                reference.model = self.accelerator.prepare_model(reference.model, evaluation_mode=True)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        pair_ids = inputs["pair_ids"]
        logps, tokens, model_inputs = forward_pairs(model, inputs)
        chosen, rejected = logps.chunk(2)
        chosen_tokens, rejected_tokens = tokens.chunk(2)
        ref_chosen, ref_rejected = self.reference.logps(model, model_inputs, pair_ids)
        loss = preference_loss(chosen, rejected, ref_chosen, ref_rejected, self.dpo.beta, self.dpo.loss_type,
                               chosen_tokens, rejected_tokens, self.dpo.sft_weight)
        for name, values in pair_metrics(chosen, rejected, ref_chosen, ref_rejected, self.dpo.beta).items():
            # every rank takes part in the gather (a collective), rank 0 logs the mean
            self._metrics[name].append(float(self.accelerator.gather(values.mean().reshape(1)).mean()))
        return loss

    def log(self, logs: dict, start_time=None) -> None:
        if self._metrics and "loss" in logs:  # training logs: the means since the last log line
            logs = {**logs, **{k: sum(v) / len(v) for k, v in self._metrics.items()}}
            self._metrics.clear()
        super().log(logs, start_time)


@torch.no_grad()
def score_pairs(model, dataset, collator, batch_size: int, reference: Reference | None,
                device: torch.device) -> torch.Tensor:
    """[N, 2] log-probs of every pair's chosen and rejected reply under `model` (eval mode, no
    dropout), in dataset order; with a `reference` given, its log-probs instead (adapter off /
    the frozen model), run through `model` where it needs the policy's forward."""
    was_training = model.training
    model.eval()
    rows = []
    for start in range(0, len(dataset), batch_size):
        batch = collator([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        batch = {k: v.to(device) for k, v in batch.items()}
        ctx = contextlib.nullcontext()
        if reference is not None and reference.kind == "adapter":
            from accelerate.utils import extract_model_from_parallel

            ctx = extract_model_from_parallel(model).disable_adapter()
        target = reference.model if reference is not None and reference.kind == "model" else model
        with ctx:
            logps, _, _ = forward_pairs(target, batch)
        rows.append(torch.stack(logps.float().chunk(2), dim=1).cpu())
    model.train(was_training)
    return torch.cat(rows)


def heldout_metrics(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> dict[str, float]:
    """Means over held-out pairs ([N, 2] log-probs each) of `pair_metrics`, plus `logps/accuracy`:
    the share of pairs whose chosen reply is likelier than the rejected one under the policy
    (ties one half) - the model's own preference, which the implicit reward ignores."""
    m = pair_metrics(policy[:, 0], policy[:, 1], reference[:, 0], reference[:, 1], beta)
    out = {k: float(v.mean()) for k, v in m.items()}
    diff = policy[:, 0] - policy[:, 1]
    out["logps/accuracy"] = float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())
    out["pairs"] = int(policy.shape[0])
    return out
