"""Every shipped training recipe holds the project's invariants (fine_tune.recipes.invariants), or says why not in
`invariant_exceptions`; and the invariants catch a recipe that drifts."""

from pathlib import Path

import pytest

from fine_tune.recipes.invariants import INVARIANTS, broken_invariants
from fine_tune.recipes.length import training_length
from fine_tune.recipes.loader import resolve_recipe

REPO = Path(__file__).resolve().parent.parent
PHASES = ("sft", "grpo", "eval")
SHIPPED = sorted(
    path.relative_to(REPO).as_posix()
    for path in (REPO / "configs").rglob("*.yaml")
    if path.stem.split("-")[0] in PHASES and path.parent.name not in ("tasks", "sweeps", "accelerate")
)
BASES = ("mistral-7b-v0.3", "medgemma-4b", "llama3-meerkat-8b", "qwen3-4b", "qwen3-8b")


def resolved(path, overrides=()):
    return resolve_recipe(Path(path).stem.split("-")[0], REPO / path, list(overrides))


def test_every_recipe_is_checked():
    for base in BASES:
        assert {f"configs/{base}/{phase}.yaml" for phase in PHASES} <= set(SHIPPED)
    assert {"configs/defaults/sft.yaml", "configs/sft.yaml", "configs/demo/grpo.yaml"} <= set(SHIPPED)


@pytest.mark.parametrize("path", SHIPPED)
def test_shipped_recipe_holds_the_invariants(path):
    recipe = resolved(path)
    assert broken_invariants(recipe.phase, recipe.values, recipe.exceptions) == {}


@pytest.mark.parametrize("base", BASES)
def test_bases_break_no_invariant_even_on_purpose(base):
    """Only the measured project run and the CPU demo may state exceptions; a base inherits the whole protocol."""
    for phase in ("sft", "grpo"):
        recipe = resolved(f"configs/{base}/{phase}.yaml")
        assert recipe.exceptions == {}
        assert recipe.values["dev_size"] > 0 and recipe.values["early_stopping_patience"] > 0
    length = training_length(resolved(f"configs/{base}/sft.yaml").values, "sft")
    assert length.given == "num_train_epochs" and 1 <= length.epochs <= 3


@pytest.mark.parametrize(
    ("path", "override", "broken"),
    [
        ("configs/qwen3-8b/sft.yaml", ["--dev_size", "0", "--early_stopping_patience", "0"], "dev_size"),
        ("configs/medgemma-4b/grpo.yaml", ["--early_stopping_patience", "0"], "early_stopping"),
        (
            "configs/mistral-7b-v0.3/grpo.yaml",
            ["--reward_funcs", "json_validity_reward", "schema_compliance_reward", "accuracy_reward"],
            "gated_reward",
        ),
        ("configs/llama3-meerkat-8b/sft.yaml", ["--num_train_epochs", "4"], "sft_epochs"),
        ("configs/qwen3-4b/sft.yaml", ["--max_steps", "800"], "sft_epochs"),
    ],
)
def test_a_drifting_recipe_is_caught(path, override, broken):
    recipe = resolved(path, override)
    assert broken in broken_invariants(recipe.phase, recipe.values, recipe.exceptions)


def test_dev_size_zero_in_a_base_file_fails_the_invariant(tmp_path):
    """The same check the shipped-recipe test runs, on a copy of a base file with dev_size: 0 (and no early stopping,
    which needs a dev slice)."""
    base = REPO / "configs/qwen3-8b/sft.yaml"
    copy = tmp_path / "configs/qwen3-8b/sft.yaml"
    copy.parent.mkdir(parents=True)
    (tmp_path / "configs/defaults").mkdir()
    (tmp_path / "configs/defaults/sft.yaml").write_text((REPO / "configs/defaults/sft.yaml").read_text())
    copy.write_text(base.read_text() + "dev_size: 0\nearly_stopping_patience: null\n")
    recipe = resolve_recipe("sft", copy)
    assert set(broken_invariants("sft", recipe.values, recipe.exceptions)) == {"dev_size", "early_stopping"}


def test_an_exception_with_its_reason_is_honoured(tmp_path):
    leaf = tmp_path / "sft.yaml"
    leaf.write_text(
        f"extends: {REPO / 'configs/defaults/sft.yaml'}\nmax_steps: 800\n"
        "invariant_exceptions: {sft_epochs: 'measured run kept as is'}\n"
    )
    recipe = resolve_recipe("sft", leaf)
    assert recipe.exceptions == {"sft_epochs": "measured run kept as is"}
    assert broken_invariants("sft", recipe.values, recipe.exceptions) == {}
    assert "sft_epochs" in broken_invariants("sft", recipe.values, {})


def test_the_invariants_are_the_four_named():
    assert set(INVARIANTS) == {"dev_size", "early_stopping", "gated_reward", "sft_epochs"}
