"""Perplexity of plain texts (a `type: text` task): each text is tokenized as SFT trains it (its tokens, then the
end-of-sequence token), every token after the first is predicted, and the per-text sums of negative log-likelihood
and token counts are kept, so a corpus perplexity exp(sum NLL / sum tokens) can be resampled by text (bootstrap)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fine_tune.evaluate.text_metrics import percentile_interval, resample_indices


@dataclass(frozen=True)
class TextLosses:
    nll: np.ndarray  # per text: summed negative log-likelihood (nats) of its predicted tokens
    tokens: np.ndarray  # per text: tokens predicted
    truncated: int  # texts cut at max_length

    @property
    def perplexity(self) -> float:
        """Corpus perplexity: exp of the mean NLL per predicted token over all texts."""
        return float(math.exp(self.nll.sum() / self.tokens.sum()))

    def resampled(self, rows: np.ndarray) -> np.ndarray:
        """Corpus perplexity of each resample (rows: (resamples, n) indices)."""
        return np.exp(self.nll[rows].sum(axis=1) / self.tokens[rows].sum(axis=1))


def text_token_ids(tokenizer, text: str, max_length: int | None) -> tuple[list[int], bool]:
    ids = list(tokenizer(text)["input_ids"])
    if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
        ids.append(tokenizer.eos_token_id)
    if max_length is not None and len(ids) > max_length:
        return ids[:max_length], True
    return ids, False


@torch.no_grad()
def text_losses(
    model, tokenizer, texts: Sequence[str], batch_size: int = 8, max_length: int | None = None
) -> TextLosses:
    """Per-text NLL sums and predicted-token counts under `model` (right padding, padded positions ignored)."""
    device = next(model.parameters()).device
    encoded = [text_token_ids(tokenizer, text, max_length) for text in texts]
    nll, counts = np.zeros(len(texts)), np.zeros(len(texts), dtype=np.int64)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(encoded), batch_size):
        batch = [ids for ids, _ in encoded[start : start + batch_size]]
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        input_ids, mask = input_ids.to(device), mask.to(device)
        logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
        targets, target_mask = input_ids[:, 1:], mask[:, 1:].float()
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none") * target_mask
        nll[start : start + len(batch)] = losses.sum(dim=1).cpu().numpy()
        counts[start : start + len(batch)] = target_mask.sum(dim=1).cpu().numpy()
    return TextLosses(nll, counts, sum(cut for _, cut in encoded))


def perplexity_interval(losses: TextLosses, resamples: int, seed: int) -> dict[str, float]:
    """{value, n, tokens, ci_low, ci_high, method}: corpus perplexity with a percentile bootstrap over texts."""
    low, high = percentile_interval(losses.resampled(resample_indices(len(losses.nll), resamples, seed)))
    value = losses.perplexity
    n, tokens = len(losses.nll), int(losses.tokens.sum())
    return {"value": value, "n": n, "tokens": tokens, "ci_low": low, "ci_high": high, "method": "bootstrap"}


def paired_perplexity_difference(a: TextLosses, b: TextLosses, resamples: int, seed: int) -> dict[str, float]:
    """Perplexity of a minus b on the same texts, both on the same resamples."""
    rows = resample_indices(len(a.nll), resamples, seed)
    diff = a.perplexity - b.perplexity
    low, high = percentile_interval(a.resampled(rows) - b.resampled(rows))
    return {"diff": float(diff), "ci_low": low, "ci_high": high}
