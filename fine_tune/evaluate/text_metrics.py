"""Text-overlap metrics of generated answers against reference texts, each with a bootstrap interval.

ROUGE is rouge-score's (F-measure, 0..1) and BLEU is sacrebleu's corpus BLEU (0..100, its default `13a` tokenizer).
rouge-score's default tokenizer keeps only `[a-z0-9]`, so Korean (or any non-Latin) text scores 0 against itself:
every ROUGE here runs with `UnicodeTokenizer` (casefolded runs of Unicode letters and digits), which gives the same
tokens as the default on ASCII text. Token F1 and exact match use the same tokens (SQuAD's rule, without its
English-only article removal).

Every metric has a percentile bootstrap interval from resampling rows (BLEU from resampling its per-row n-gram
statistics, as sacrebleu's own paired bootstrap does); two models scored on the same rows are compared with the same
resamples (paired).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sacrebleu.metrics import BLEU

ROUGE_TYPES: tuple[str, ...] = ("rouge1", "rouge2", "rougeL")
ROW_METRICS: tuple[str, ...] = (*ROUGE_TYPES, "token_f1", "exact_match")
OPEN_METRICS: tuple[str, ...] = (*ROUGE_TYPES, "bleu", "token_f1", "exact_match")
CONFIDENCE = 0.95
_WORD = re.compile(r"[^\W_]+")


def tokens(text: str | None) -> list[str]:
    """Casefolded runs of Unicode letters and digits (Hangul, CJK, Cyrillic... are kept, punctuation dropped)."""
    return _WORD.findall((text or "").casefold())


class UnicodeTokenizer:
    """rouge-score's tokenizer interface (`tokenize`) over `tokens`."""

    def tokenize(self, text: str) -> list[str]:
        return tokens(text)


@functools.cache
def rouge_scorer():
    """rouge-score's scorer with the Unicode tokenizer; imported on first use (rouge-score loads NLTK: seconds)."""
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(list(ROUGE_TYPES), tokenizer=UnicodeTokenizer())


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures of one prediction against one reference."""
    scores = rouge_scorer().score(reference, prediction or "")
    return {name: float(scores[name].fmeasure) for name in ROUGE_TYPES}


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (bag of tokens); 1.0 when both are empty."""
    predicted, gold = tokens(prediction), tokens(reference)
    if not predicted or not gold:
        return float(predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, reference: str) -> float:
    return float(tokens(prediction) == tokens(reference))


def row_scores(prediction: str | None, reference: str) -> dict[str, float]:
    """Every per-row metric of one answer (a missing answer is the empty text)."""
    prediction = prediction or ""
    return {
        **rouge(prediction, reference),
        "token_f1": token_f1(prediction, reference),
        "exact_match": exact_match(prediction, reference),
    }


@dataclass(frozen=True)
class CorpusBleu:
    """sacrebleu's corpus BLEU kept as per-row sufficient statistics, so resamples need no re-tokenising."""

    stats: np.ndarray  # (rows, 2 + 2 * max_ngram_order): lengths, then matches and totals per n-gram order

    @classmethod
    def of(cls, predictions: Sequence[str | None], references: Sequence[str]) -> CorpusBleu:
        hypotheses = [p or "" for p in predictions]
        stats = _BLEU._extract_corpus_statistics(hypotheses, [list(references)])
        return cls(np.asarray(stats, dtype=np.int64).reshape(len(hypotheses), -1))

    def score(self, rows: np.ndarray | None = None) -> float:
        stats = self.stats if rows is None else self.stats[rows]
        return float(_BLEU._compute_score_from_stats(stats.sum(axis=0).tolist()).score)


_BLEU = BLEU()


def corpus_bleu(predictions: Sequence[str | None], references: Sequence[str]) -> float:
    """sacrebleu corpus BLEU (0..100)."""
    return CorpusBleu.of(predictions, references).score()


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) row indices drawn with replacement; the same seed gives the same draws (paired comparisons)."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    alpha = 1 - confidence
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _statistics(scores: Mapping[str, Sequence[float]], bleu: CorpusBleu | None) -> dict[str, Callable]:
    """metric -> function of a (resamples, n) index array giving one value per resample."""
    statistics: dict[str, Callable] = {}
    for name, values in scores.items():
        array = np.asarray(values, dtype=float)
        statistics[name] = lambda rows, array=array: array[rows].mean(axis=-1)
    if bleu is not None:
        statistics["bleu"] = lambda rows: np.array([bleu.score(r) for r in rows])
    return statistics


def metric_intervals(
    scores: Mapping[str, Sequence[float]],
    bleu: CorpusBleu | None,
    resamples: int,
    seed: int,
) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """(metric -> value, metric -> {value, n, ci_low, ci_high, method}); per-row `scores` are averaged, `bleu` is
    the corpus score."""
    n = len(next(iter(scores.values()))) if scores else 0
    metrics: dict[str, float] = {name: float(np.mean(values)) for name, values in scores.items()}
    if bleu is not None:
        metrics["bleu"] = bleu.score()
    if n == 0:
        raise ValueError("need at least one scored row")
    rows = resample_indices(n, resamples, seed)
    intervals = {}
    for name, statistic in _statistics(scores, bleu).items():
        low, high = percentile_interval(statistic(rows))
        intervals[name] = {"value": metrics[name], "n": n, "ci_low": low, "ci_high": high, "method": "bootstrap"}
    return metrics, intervals


def paired_differences(
    a: tuple[Mapping[str, Sequence[float]], CorpusBleu | None],
    b: tuple[Mapping[str, Sequence[float]], CorpusBleu | None],
    resamples: int,
    seed: int,
) -> dict[str, dict[str, float]]:
    """metric -> {diff, ci_low, ci_high} of a minus b on the same rows, both scored on the same resamples."""
    stats_a, stats_b = _statistics(*a), _statistics(*b)
    n = len(next(iter(a[0].values())))
    if n != len(next(iter(b[0].values()))):
        raise ValueError("paired comparison needs the same rows for both models")
    rows = resample_indices(n, resamples, seed)
    everything = np.arange(n)[None, :]
    result = {}
    for name in stats_a:
        if name not in stats_b:
            continue
        diff = float(stats_a[name](everything)[0] - stats_b[name](everything)[0])
        low, high = percentile_interval(stats_a[name](rows) - stats_b[name](rows))
        result[name] = {"diff": diff, "ci_low": low, "ci_high": high}
    return result
