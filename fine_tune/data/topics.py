"""A specialty for each question of a set without a subject column, from a stated keyword table.

`configs/topics/specialties.yaml` lists specialty -> keywords; a question gets the specialty whose keywords it names
most often (case-folded, whole words, a trailing plural "s" allowed), a hit in the question or its context counting
twice one in an option (the stem says what is asked; options often span specialties); ties go to the specialty listed
first, and a question naming none is `other`. The tag is a heuristic, recorded as such (`subject_source:
tagged` in the eval results), never passed off as a given subject.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from fine_tune.constants import PROJECT_ROOT
from fine_tune.errors import RecipeError
from fine_tune.io import read_yaml

SPECIALTY_TABLE = PROJECT_ROOT / "configs" / "topics" / "specialties.yaml"
OTHER = "other"


@functools.cache
def keyword_patterns(path: Path = SPECIALTY_TABLE) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(specialty, one pattern matching any of its keywords), in the table's order."""
    table = read_yaml(path)
    patterns = []
    for specialty, keywords in table.items():
        if not isinstance(keywords, list) or not keywords or not all(isinstance(k, str) and k for k in keywords):
            raise RecipeError(f"{path}: {specialty}: expected a non-empty list of keywords, got {keywords!r}")
        words = "|".join(re.escape(keyword.casefold()) for keyword in sorted(keywords, key=len, reverse=True))
        patterns.append((str(specialty), re.compile(rf"\b(?:{words})s?\b")))
    return tuple(patterns)


STEM_WEIGHT = 2  # a keyword in the question or context counts this many times one in an option


def tag_specialty(stem: Iterable[str | None], options: Iterable[str] = (), path: Path = SPECIALTY_TABLE) -> str:
    """The specialty whose keywords the texts name most often (stem hits weighted STEM_WEIGHT), or OTHER."""
    stem_text = " ".join(t for t in stem if t).casefold()
    options_text = " ".join(o for o in options if o).casefold()
    best, best_score = OTHER, 0
    for specialty, pattern in keyword_patterns(path):
        score = STEM_WEIGHT * len(pattern.findall(stem_text)) + len(pattern.findall(options_text))
        if score > best_score:
            best, best_score = specialty, score
    return best


def tag_row(question: str, options: Sequence[str], context: str | None = None) -> str:
    return tag_specialty([question, context], options)


def coverage(subjects: Iterable[str]) -> dict[str, float | int]:
    """How many tagged rows got a specialty rather than OTHER."""
    subjects = list(subjects)
    tagged = sum(subject != OTHER for subject in subjects)
    return {"rows": len(subjects), "tagged": tagged, "share": tagged / len(subjects) if subjects else 0.0}


def specialties(path: Path = SPECIALTY_TABLE) -> tuple[str, ...]:
    return tuple(specialty for specialty, _ in keyword_patterns(path))
