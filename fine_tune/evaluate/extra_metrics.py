"""Optional text metrics of open answers, each per row (so they get intervals and paired differences like the rest):
METEOR (NLTK's, which needs the WordNet data that is not on PyPI) and BERTScore F1 (bert-score, which needs its
model). Either is refused before any model runs, in one line naming what is missing, when it cannot be had."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from fine_tune.errors import RecipeError
from fine_tune.evaluate.text_metrics import tokens

EXTRA_METRICS: tuple[str, ...] = ("meteor", "bertscore")
WORDNET_PATHS: tuple[str, ...] = ("corpora/wordnet", "corpora/wordnet.zip")


def parse_extra_metrics(value: str | None) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in (value or "").split(",") if n.strip()))
    unknown = [n for n in names if n not in EXTRA_METRICS]
    if unknown:
        raise RecipeError(f"extra_metrics: unknown {', '.join(unknown)}; expected {', '.join(EXTRA_METRICS)}")
    return names


def require_extra_metrics(names: Sequence[str], bertscore_model: str) -> None:
    """RecipeError (one line) when an asked-for metric cannot be computed here."""
    if "meteor" in names and not wordnet_available():
        raise RecipeError(
            "extra_metrics: meteor needs NLTK's WordNet data (corpora/wordnet), which is not on PyPI and was not "
            "found in nltk.data.path; run `python -m nltk.downloader wordnet` where there is network, or drop meteor"
        )
    if "bertscore" in names:
        bertscore_scorer(bertscore_model)


def wordnet_available() -> bool:
    import nltk  # installed with rouge-score (its WordNet data is not); 2 s to import, so only when asked for

    for path in WORDNET_PATHS:
        try:
            nltk.data.find(path)
            return True
        except LookupError:
            continue
    return False


@functools.cache
def bertscore_scorer(model: str):
    """bert-score's scorer with `model` loaded, once per run (an ID in bert-score's model-to-layer table, e.g.
    roberta-large, from the Hub or its cache); RecipeError in one line when the package or the model cannot be
    loaded."""
    try:
        from bert_score import BERTScorer  # optional: not a dependency of the project
    except ImportError:
        raise RecipeError("extra_metrics: bertscore needs the bert-score package (pip install bert-score)") from None
    try:
        return BERTScorer(model_type=model)
    except Exception as error:  # offline, not found, not in bert-score's layer table: one line
        raise RecipeError(
            f"extra_metrics: bertscore's model {model!r} cannot be loaded ({type(error).__name__}: {error}); pass "
            "--bertscore_model a model bert-score knows that is available here, or drop bertscore"
        ) from None


def meteor_scores(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    from nltk.translate.meteor_score import meteor_score  # see wordnet_available

    return [float(meteor_score([tokens(r)], tokens(p))) for p, r in zip(predictions, references, strict=True)]


def bertscore_f1(predictions: Sequence[str], references: Sequence[str], model: str) -> list[float]:
    _, _, f1 = bertscore_scorer(model).score(list(predictions), list(references))
    return [float(v) for v in f1]


def add_extra_scores(records: list[dict], names: Sequence[str], bertscore_model: str) -> None:
    """Each record gains the asked-for metrics of its parsed answer against its reference."""
    if not records:
        return
    predictions, references = [r["answer"] for r in records], [r["reference"] for r in records]
    columns = {}
    if "meteor" in names:
        columns["meteor"] = meteor_scores(predictions, references)
    if "bertscore" in names:
        columns["bertscore"] = bertscore_f1(predictions, references, bertscore_model)
    for name, values in columns.items():
        for record, value in zip(records, values, strict=True):
            record[name] = value
