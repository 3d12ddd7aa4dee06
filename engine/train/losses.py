"""SFT losses that reweight each learnt token: DFT, ASFT and EAFT (`use_dft_loss`, `use_asft_loss`, `use_eaft_loss`).

The losses are pure functions of logits and labels. `labels` are the batch's, unshifted (-100 where nothing is
learnt); the logits come in either layout our collator makes: [batch, length, vocab] over every position, or
[n, vocab] for only the n positions whose next token is learnt (`select_logits`: the model projected just those,
in row order). Each loss averages over the learnt tokens, or divides their sum by `num_items_in_batch` when the
Trainer gives it (the learnt tokens of the whole accumulated batch), so gradient accumulation weighs every token
alike. `loss_function` turns the config's choice into the Trainer's `compute_loss_func`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from engine.config import RunConfig
from engine.templates import IGNORE_INDEX

logger = logging.getLogger(__name__)

EAFT_TOP_K = 20  # EAFT's entropy is taken over the model's 20 likeliest tokens


def learnt_tokens(logits: Any, labels: Any) -> tuple[Any, Any]:
    """The logits and the target of every learnt position, as [n, vocab] and [n], from either logits layout."""
    import torch

    targets = torch.full_like(labels, IGNORE_INDEX)
    targets[..., :-1] = labels[..., 1:]  # position t predicts token t + 1
    keep = targets != IGNORE_INDEX
    targets = targets[keep].to(logits.device)
    if logits.dim() == labels.dim() + 1:
        return logits[keep.to(logits.device)], targets
    if logits.shape[0] != targets.numel():
        raise ValueError(f"{logits.shape[0]} selected logits for {targets.numel()} learnt tokens")
    return logits, targets


def _reduce(per_token: Any, num_items_in_batch: Any = None) -> Any:
    if num_items_in_batch is not None:
        return per_token.sum() / num_items_in_batch
    return per_token.sum() / max(per_token.numel(), 1)  # an empty batch gives 0, not nan


def _cross_entropy(logits: Any, targets: Any) -> Any:
    import torch.nn.functional as F

    return F.cross_entropy(logits, targets, reduction="none")


def dft_loss(logits: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
    """DFT (dynamic fine-tuning): each token's cross-entropy times the model's own probability of that token,
    taken as a constant (no gradient flows through the weight)."""
    logits, targets = learnt_tokens(logits.float(), labels)
    ce = _cross_entropy(logits, targets)
    return _reduce(ce * ce.detach().neg().exp(), num_items_in_batch)


def eaft_loss(logits: Any, labels: Any, num_items_in_batch: Any = None, alpha: float = 1.0) -> Any:
    """EAFT (entropy-adaptive fine-tuning): each token's cross-entropy times (H / ln k) ** alpha, where H is the
    entropy of the model's distribution renormalised over its k = 20 likeliest tokens, so H / ln k lies in [0, 1]
    (LLaMA-Factory divides by 3, which is ln 20 rounded). The weight is a constant for the gradient."""
    import torch

    logits, targets = learnt_tokens(logits.float(), labels)
    ce = _cross_entropy(logits, targets)
    with torch.no_grad():
        k = min(EAFT_TOP_K, logits.shape[-1])
        top = torch.log_softmax(logits.topk(k, dim=-1).values, dim=-1)
        entropy = -(top.exp() * top).sum(-1)
        weight = (entropy / math.log(max(k, 2))).pow(alpha)
    return _reduce(ce * weight, num_items_in_batch)


def asft_loss(logits: Any, ref_logits: Any, labels: Any, num_items_in_batch: Any = None, alpha: float = 0.1) -> Any:
    """ASFT (anchored SFT): the DFT term plus alpha times KL(reference || model) over the whole vocabulary at each
    learnt token, which keeps the model's distributions near the reference model's."""
    import torch

    logits, targets = learnt_tokens(logits.float(), labels)
    ref_logits, _ = learnt_tokens(ref_logits.float(), labels)
    ce = _cross_entropy(logits, targets)
    log_model = torch.log_softmax(logits, dim=-1)
    log_ref = torch.log_softmax(ref_logits.to(logits.device), dim=-1)
    kl = (log_ref.exp() * (log_ref - log_model)).sum(-1)
    return _reduce(ce * ce.detach().neg().exp() + alpha * kl, num_items_in_batch)


def _logits(outputs: Any) -> Any:
    logits = outputs.get("logits") if isinstance(outputs, dict) else getattr(outputs, "logits", None)
    if logits is None:
        raise ValueError("the DFT, ASFT and EAFT losses need the model's logits, and this model returned none")
    return logits


class ReferenceLogits:
    """The reference model's logits for the batch the trained model saw last.

    A forward pre-hook keeps the keyword inputs of the trained model's latest call (the Trainer's `model(**inputs)`,
    labels already taken out); `__call__` runs the reference on the same inputs without gradients: a separate frozen
    model, or with `reference=None` the trained PEFT model itself with its adapters switched off.
    """

    def __init__(self, model: Any, reference: Any = None) -> None:
        self.model = model
        self.reference = reference
        self._inputs: dict[str, Any] | None = None
        self._scoring = False
        model.register_forward_pre_hook(self._remember, with_kwargs=True)

    def _remember(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        # Generation steps (with a cache) are never scored: holding their inputs would keep the cache alive.
        if not self._scoring and not kwargs.get("use_cache"):
            self._inputs = kwargs

    def __call__(self) -> Any:
        import torch

        if self._inputs is None:
            raise RuntimeError("the reference logits were asked for before the model saw a batch")
        # No cache: with one, transformers would not see the example boundaries of a padding-free row.
        inputs = {key: value for key, value in self._inputs.items() if key != "num_items_in_batch"}
        inputs["use_cache"] = False
        self._inputs, self._scoring = None, True
        try:
            with torch.no_grad():
                if self.reference is not None:
                    return _logits(self.reference(**inputs))
                with self.model.disable_adapter():
                    return _logits(self.model(**inputs))
        finally:
            self._scoring = False


def loss_function(config: RunConfig, model: Any, reference: Any = None) -> Callable[..., Any] | None:
    """The Trainer's `compute_loss_func(outputs, labels, num_items_in_batch)` for the loss the config asks for
    (stage sft only), or None for the model's own cross-entropy. ASFT also needs `reference`, the frozen reference
    model (None with LoRA: the trained model without its adapters)."""
    ft = config.finetuning
    if ft.stage != "sft":
        return None
    if ft.use_dft_loss:
        logger.info("Loss: DFT (token cross-entropy weighted by the token's probability).")
        return lambda outputs, labels, num_items_in_batch=None: dft_loss(_logits(outputs), labels, num_items_in_batch)
    if ft.use_eaft_loss:
        logger.info("Loss: EAFT (token cross-entropy weighted by normalised entropy ** %g).", ft.eaft_alpha)
        return lambda outputs, labels, num_items_in_batch=None: eaft_loss(_logits(outputs), labels,
                                                                          num_items_in_batch, ft.eaft_alpha)
    if ft.use_asft_loss:
        logger.info("Loss: ASFT (DFT + %g x KL to the reference model).", ft.asft_alpha)
        ref_logits = ReferenceLogits(model, reference)
        return lambda outputs, labels, num_items_in_batch=None: asft_loss(_logits(outputs), ref_logits(), labels,
                                                                          num_items_in_batch, ft.asft_alpha)
    return None
