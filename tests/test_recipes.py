"""Composed recipes (fine_tune.recipes.loader): `extends`, origins, refusals, --show_recipe, and every shipped recipe
resolving to the values it had before composition (tests/fixtures/recipes_before.json, written by the loader of
commit c6d04a8, when each recipe was one self-contained file)."""

import json
from pathlib import Path

import pytest

from fine_tune.errors import RecipeError
from fine_tune.recipes.loader import (
    COMMAND_LINE,
    DEFAULT_ORIGIN,
    format_recipe,
    jsonable,
    parse_recipe,
    resolve_recipe,
)

REPO = Path(__file__).resolve().parent.parent
BEFORE = json.loads((REPO / "tests/fixtures/recipes_before.json").read_text())
HARDWARE_KEYS = {"bf16", "fp16", "use_cpu"}  # resolved from the machine the test runs on
UNCHANGED = [
    "configs/sft.yaml",
    "configs/grpo.yaml",
    "configs/eval.yaml",
    "configs/demo/sft.yaml",
    "configs/demo/grpo.yaml",
    "configs/demo/eval.yaml",
]
BASES = sorted(path for path in BEFORE if path not in UNCHANGED)
# What composition changed on purpose in the base recipes: the protocol they now inherit (held-out selection and the
# trainer settings it implies, early stopping, the gated reward, training length in epochs) and the precision rule.
INTENDED = {
    "dev_size",
    "eval_steps",
    "save_steps",
    "early_stopping_patience",
    "eval_on_start",
    "do_eval",
    "eval_strategy",
    "metric_for_best_model",
    "greater_is_better",
    "load_best_model_at_end",
    "reward_funcs",
    "max_steps",
    "num_train_epochs",
    "model_type",
}


TRACK_DEFAULTS = {
    "split": {"curriculum": None},
    "sft": {"target_perplexity": None},
    "grpo": {"target_perplexity": None},
    "eval": {"text_max_length": 2048, "extra_metrics": None, "bertscore_model": "roberta-large"},
}
INTENDED |= {key for keys in TRACK_DEFAULTS.values() for key in keys}  # new keys at their defaults


def phase_of(path: str) -> str:
    return Path(path).stem.split("-")[0]


def resolved_json(path: str) -> dict:
    values = resolve_recipe(phase_of(path), REPO / path).values
    return {key: jsonable(value) for key, value in values.items() if key not in HARDWARE_KEYS}


@pytest.mark.parametrize("path", UNCHANGED)
def test_project_and_demo_recipes_resolve_exactly_as_before(path):
    before = {key: value for key, value in BEFORE[path].items() if key not in HARDWARE_KEYS}
    after = resolved_json(path)
    assert {key: after.get(key) for key in before} == before
    # keys added since the snapshot, each off by default: the precision rule's model_type; the eval's study options;
    # the specialty curriculum and the text/open tasks' settings (docs/tracks.md, docs/rounds.md)
    added = {"model_type": None} | ({"prompt_variants": None, "harness": None} if phase_of(path) == "eval" else {})
    added |= TRACK_DEFAULTS["split"] | TRACK_DEFAULTS.get(phase_of(path), {})
    assert {key: after[key] for key in set(after) - set(before)} == added


@pytest.mark.parametrize("path", BASES)
def test_base_recipes_change_only_the_protocol_they_now_inherit(path):
    before, after = BEFORE[path], resolved_json(path)
    changed = {
        key for key in set(before) | set(after) if key not in HARDWARE_KEYS and before.get(key) != after.get(key)
    }
    assert changed <= INTENDED, sorted(changed - INTENDED)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_extends_is_relative_recursive_and_keeps_each_origin(tmp_path):
    write(tmp_path / "defaults/sft.yaml", "lora_r: 4\nlora_alpha: 8\nlearning_rate: 1.0e-4\n")
    write(tmp_path / "base/mid.yaml", "extends: ../defaults/sft.yaml\nlora_alpha: 16\n")
    leaf = write(tmp_path / "base/leaf.yaml", "extends: mid.yaml\nlora_r: 8\n")
    resolved = resolve_recipe("sft", leaf, ["--learning_rate", "3e-4", "--output_dir", str(tmp_path / "out")])
    values, origins = resolved.values, resolved.origins
    assert (values["lora_r"], values["lora_alpha"], values["learning_rate"]) == (8, 16, 3e-4)
    assert origins["lora_r"] == str(leaf)
    assert origins["lora_alpha"] == str(tmp_path / "base/mid.yaml")
    assert origins["learning_rate"] == COMMAND_LINE
    assert origins["lora_dropout"] == DEFAULT_ORIGIN
    assert resolved.files == (str(tmp_path / "defaults/sft.yaml"), str(tmp_path / "base/mid.yaml"), str(leaf))
    shown = format_recipe(resolved)
    assert shown.splitlines()[2].startswith("learning_rate") and shown.splitlines()[2].endswith(f"# {COMMAND_LINE}")
    assert any(
        line.startswith("lora_alpha") and line.endswith(str(tmp_path / "base/mid.yaml")) for line in shown.splitlines()
    )


def test_several_parents_apply_in_order(tmp_path):
    write(tmp_path / "a.yaml", "lora_r: 4\nlora_alpha: 8\n")
    write(tmp_path / "b.yaml", "lora_r: 32\n")
    leaf = write(tmp_path / "leaf.yaml", "extends: [a.yaml, b.yaml]\n")
    resolved = resolve_recipe("sft", leaf, ["--output_dir", str(tmp_path)])
    assert (resolved.values["lora_r"], resolved.values["lora_alpha"]) == (32, 8)
    assert resolved.origins["lora_r"] == str(tmp_path / "b.yaml")


def test_a_cycle_is_refused_in_one_line(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\nlora_r: 4\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(RecipeError, match=r"cycle \(.*a.yaml -> .*b.yaml -> .*a.yaml\)") as error:
        resolve_recipe("sft", tmp_path / "a.yaml")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("extends: missing.yaml\n", "missing.yaml: no such recipe file"),
        ("extends: {a: 1}\n", "extends must be a recipe file or a list"),
        ("lora_rr: 4\n", "unknown key 'lora_rr' (did you mean 'lora_r'?)"),
        ("invariant_exceptions: {dev_sise: why}\n", "unknown invariant 'dev_sise' (did you mean 'dev_size'?)"),
        ("invariant_exceptions: {dev_size: ''}\n", "dev_size needs the reason in words"),
        ("invariant_exceptions: [dev_size]\n", "must map an invariant to its reason"),
    ],
)
def test_bad_composition_names_the_file_and_key(tmp_path, text, message):
    leaf = write(tmp_path / "leaf.yaml", text)
    with pytest.raises(RecipeError, match="leaf.yaml|missing.yaml") as error:
        resolve_recipe("sft", leaf)
    assert message in str(error.value)


def test_a_parent_file_with_a_bad_key_is_named(tmp_path):
    write(tmp_path / "parent.yaml", "learning_rat: 1e-4\n")
    leaf = write(tmp_path / "leaf.yaml", "extends: parent.yaml\n")
    with pytest.raises(RecipeError, match=r"parent.yaml: unknown key 'learning_rat'"):
        resolve_recipe("sft", leaf)


def test_show_recipe_prints_every_key_with_its_origin_and_exits(capsys):
    with pytest.raises(SystemExit) as stop:
        parse_recipe("sft", ["--config", str(REPO / "configs/qwen3-8b/sft.yaml"), "--lora_r", "8", "--show_recipe"])
    assert stop.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("configs/qwen3-8b/sft.yaml <- " + str(REPO / "configs/defaults/sft.yaml"))
    assert "120 optimizer steps = 2.00 epochs over 950 training rows" in lines[1]
    by_key = {line.split()[0]: line for line in lines[2:]}
    assert by_key["lora_r"].endswith(f"# {COMMAND_LINE}")
    assert by_key["dev_size"].endswith("configs/defaults/sft.yaml")
    assert by_key["model_name_or_path"].endswith("configs/qwen3-8b/sft.yaml")
    assert by_key["weight_decay"].endswith(f"# {DEFAULT_ORIGIN}")
