"""Synthetic MedMCQA-schema rows for the offline demo and tests.

The answer follows from the question by a rule that a 170K-parameter model learns in about a minute on a CPU and
applies to unseen rows: the question names a category, exactly one option is a member of it (the three others belong
to three other categories), and that option always stands at the category's letter (`ANSWER_POSITION`: bone A,
enzyme B, hormone C, nerve D, vessel A, drug B). The position makes the letter a one-step function of the question;
without it the model must find the member among the options and then read the letter before it, a two-step lookup
that a random-init 2-layer model did not learn within CPU minutes (held-out accuracy stayed at chance, 0.2-0.38).
The distractors, their order, the phrasing and the explanation vary, so held-out rows are new combinations.

A second family, "member" (`--family member`), puts the member at a uniformly random letter: the answer is not a
function of the category, so a model must find the member among the options: the kind of task on which the demo
recipes were reported to fail (SFT 15% strict accuracy, then a GRPO run that gamed the format rewards).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fine_tune.cli import OneLineArgumentParser, parse_only_exit, run_main
from fine_tune.data.normalise import normalise_dataset
from fine_tune.io import atomic_write_jsonl
from fine_tune.task.prompts import OPTION_COLUMNS
from fine_tune.task.spec import DEFAULT_TASK, resolve_task

CATEGORIES: dict[str, tuple[str, ...]] = {
    "bone": ("femur", "tibia", "fibula", "humerus", "ulna", "scapula", "patella", "clavicle"),
    "enzyme": ("amylase", "lipase", "pepsin", "trypsin", "lactase", "maltase", "sucrase", "elastase"),
    "hormone": ("insulin", "glucagon", "cortisol", "thyroxine", "oxytocin", "prolactin", "melatonin", "vasopressin"),
    "nerve": ("vagus", "median", "radial", "sciatic", "phrenic", "trigeminal", "obturator", "pudendal"),
    "vessel": ("aorta", "carotid", "jugular", "saphenous", "cephalic", "basilic", "azygos", "subclavian"),
    "drug": ("aspirin", "heparin", "warfarin", "metformin", "atenolol", "digoxin", "morphine", "penicillin"),
}
SUBJECTS: dict[str, str] = {
    "bone": "Anatomy",
    "enzyme": "Biochemistry",
    "hormone": "Physiology",
    "nerve": "Anatomy",
    "vessel": "Surgery",
    "drug": "Pharmacology",
}
TOPICS: dict[str, str] = {
    "bone": "Osteology",
    "enzyme": "Digestive enzymes",
    "hormone": "Endocrinology",
    "nerve": "Peripheral nerves",
    "vessel": "Blood vessels",
    "drug": "General pharmacology",
}
TEMPLATES: tuple[str, ...] = (
    "Which of the following is {article} {category}?",
    "Identify the {category} among the following:",
    "Which one of these is classified as {article} {category}?",
)
ANSWER_POSITION: dict[str, int] = {category: i % len(OPTION_COLUMNS) for i, category in enumerate(CATEGORIES)}
FAMILIES: tuple[str, ...] = ("category", "member")
EXP_NULL_RATE = 0.1
TOPIC_NULL_RATE = 0.5
DEFAULT_OUT_DIR = Path("demo_artifacts")


def generate_rows(n: int, seed: int = 0, family: str = "category") -> list[dict[str, Any]]:
    """`n` rows of a family, identical for the same seed; ids are `syn-<seed>-<index:06d>` ("category") or
    `syn-<family>-<seed>-<index:06d>`, unique across seeds and families."""
    if family not in FAMILIES:
        raise ValueError(f"unknown synthetic family {family!r}; expected one of {', '.join(FAMILIES)}")
    rng = random.Random(seed)
    prefix = "syn" if family == "category" else f"syn-{family}"
    return [_row(rng, f"{prefix}-{seed}-{index:06d}", family) for index in range(n)]


def generate_canonical_rows(n: int, seed: int = 0, family: str = "category") -> list[dict[str, Any]]:
    """`generate_rows` as canonical rows (the medmcqa task's normaliser), the form the prompts render."""
    return normalise_dataset(resolve_task(DEFAULT_TASK), generate_rows(n, seed, family)).dataset.to_list()


def _row(rng: random.Random, row_id: str, family: str = "category") -> dict[str, Any]:
    category = rng.choice(list(CATEGORIES))
    answer = rng.choice(CATEGORIES[category])
    others = rng.sample([c for c in CATEGORIES if c != category], len(OPTION_COLUMNS) - 1)
    options = [rng.choice(CATEGORIES[other]) for other in others]
    cop = ANSWER_POSITION[category] if family == "category" else rng.randrange(len(OPTION_COLUMNS))
    options.insert(cop, answer)
    article = "an" if category[0] in "aeiou" else "a"
    question = rng.choice(TEMPLATES).format(article=article, category=category)
    exp = f"{answer.capitalize()} is {article} {category}."
    return {
        "id": row_id,
        "question": question,
        **dict(zip(OPTION_COLUMNS, options, strict=True)),
        "cop": cop,
        "choice_type": "single",
        "exp": None if rng.random() < EXP_NULL_RATE else exp,
        "subject_name": SUBJECTS[category],
        "topic_name": None if rng.random() < TOPIC_NULL_RATE else TOPICS[category],
    }


def write_jsonl(rows: Iterable[Mapping[str, Any]], path: str | Path) -> None:
    atomic_write_jsonl(path, [dict(row) for row in rows])


def default_out(family: str) -> Path:
    """Where rows go without --out: under demo_artifacts/ (git-ignored), never the working folder."""
    return DEFAULT_OUT_DIR / ("synthetic.jsonl" if family == "category" else f"synthetic-{family}.jsonl")


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(description="Write synthetic MedMCQA-schema rows as JSONL.")
    parser.add_argument(
        "--out", type=Path, help=f"output .jsonl path (default {DEFAULT_OUT_DIR}/synthetic[-FAMILY].jsonl, untracked)"
    )
    parser.add_argument("--n", type=int, default=2000, help="number of rows (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--family", choices=FAMILIES, default="category", help="category (the demo's) or member (answer at random)"
    )
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error("--n must be non-negative")
    args.out = args.out or default_out(args.family)
    parse_only_exit("fine_tune.data.synthetic")
    write_jsonl(generate_rows(args.n, args.seed, args.family), args.out)
    print(f"wrote {args.n} synthetic {args.family} rows (seed {args.seed}) to {args.out}")


if __name__ == "__main__":
    run_main(main)
