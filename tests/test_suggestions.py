"""Did-you-mean for unknown keys and flags: aliases from other tools, the other dash/underscore spelling, and every
key that starts with what was typed."""

import pytest

from fine_tune.cli import OneLineArgumentParser, did_you_mean
from fine_tune.errors import PipelineError, RecipeError
from fine_tune.recipes.loader import load_recipe, schema_keys, schema_types


@pytest.fixture(scope="module")
def sft_keys() -> set[str]:
    return schema_keys(schema_types("sft"))


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("lora_rank", "lora_r"),
        ("lr", "learning_rate"),
        ("max_seq_length", "max_length"),
        ("epochs", "num_train_epochs"),
        ("batch_size", "per_device_train_batch_size"),
        ("dataset", "dataset_name"),
        ("max-steps", "max_steps"),
    ],
)
def test_aliases_and_other_spellings_name_the_one_key_meant(sft_keys, typed, meant):
    assert did_you_mean(typed, sft_keys) == f" (did you mean {meant!r}?)"


def test_several_keys_sharing_the_prefix_are_all_suggested():
    known = ["dataset_name", "dataset_train_split", "split_seed", "eval_size"]
    assert did_you_mean("datas", known) == " (did you mean 'dataset_name' or 'dataset_train_split'?)"
    assert did_you_mean("zzz", known) == ""


def test_a_recipe_with_lora_rank_suggests_lora_r(tmp_path):
    recipe = tmp_path / "sft.yaml"
    recipe.write_text("lora_rank: 8\n")
    with pytest.raises(RecipeError, match=r"unknown key 'lora_rank' \(did you mean 'lora_r'\?\)$"):
        load_recipe("sft", recipe)


def test_the_validator_suggests_dataset_name_for_the_renamed_dataset_flag():
    with pytest.raises(RecipeError, match=r"command line: unknown key 'dataset' \(did you mean 'dataset_name'\?\)"):
        load_recipe("validate", None, ["--dataset", "rows.jsonl"])


def test_an_argparse_option_with_underscores_suggests_the_dashed_one():
    parser = OneLineArgumentParser(prog="x")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--out-dir")
    with pytest.raises(
        PipelineError, match=r"^command line: unrecognized arguments: --dry_run \(did you mean --dry-run\?\)$"
    ):
        parser.parse_args(["--dry_run"])


def test_submit_job_dry_run_with_an_underscore_is_one_line_naming_dry_dash_run(capsys):
    from fine_tune.hub.jobs.submit_cli import main

    assert main(["sft", "--config", "configs/sft.yaml", "--namespace", "USER", "--dry_run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: command line: unrecognized arguments: --dry_run (did you mean --dry-run?)"


def test_submit_job_argument_errors_are_one_line(capsys):
    from fine_tune.hub.jobs.submit_cli import main

    assert main(["nonsense"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: command line: argument phase: invalid choice") and "\n" not in err
