"""The evaluation phase: config, eval rows and the split check, per-model failures, the lineage refusal, outputs."""

import contextlib
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from signatures import bound_to

from fine_tune.cli import run_main
from fine_tune.constants import (
    EXIT_BAD_INPUT,
    EXIT_MODEL_FAILED,
    EXIT_REGRESSION,
    LINEAGE_FILE,
    PREDICTIONS_FILE,
    REPORT_FILE,
    RESULTS_FILE,
)
from fine_tune.data.normalise import content_hash
from fine_tune.data.splits import manifest_hash, read_manifest, write_manifest
from fine_tune.data.synthetic import generate_rows, write_jsonl
from fine_tune.data.task_splits import load_task_split
from fine_tune.errors import DatasetError, RecipeError
from fine_tune.evaluate import scored_models
from fine_tune.evaluate.eval_set import load_eval_sets
from fine_tune.evaluate.phase import run_evaluation
from fine_tune.evaluate.runs import ModelRun
from fine_tune.evaluate.split_check import NOT_FINE_TUNED, UNVERIFIED, VERIFIED, check_split
from fine_tune.evaluate.summaries import identical_output_warnings, metric_intervals, pairwise_comparisons
from fine_tune.recipes.arguments import EvalConfig, parse_models
from fine_tune.recipes.loader import parse_recipe

REPO_ROOT = Path(__file__).resolve().parent.parent
SIZES = {"sft_size": 40, "grpo_size": 20, "eval_size": 12}
TOP_LEVEL_KEYS = {
    "format_version",
    "run_name",
    "config",
    "task",
    "shots",
    "dataset",
    "split_check",
    "prompt",
    "generation",
    "models",
    "pairwise",
    "parent_checks",
    "regressions",
    "failed",
    "warnings",
    "environment",
    "timings",
}
RECORD_KEYS = {"model", "id", "subject", "gold", "raw_output", "schema_valid", "failure", "predicted", "confidence"}

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def load_script():
    spec = importlib.util.spec_from_file_location("eval_medmcqa", REPO_ROOT / "scripts" / "eval_medmcqa.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dataset_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "synthetic.jsonl"
    write_jsonl(generate_rows(120, seed=0), path)
    return path


@pytest.fixture(scope="module")
def training_run(tmp_path_factory, dataset_file, tiny_model_dir) -> Path:
    """A fake training OUTPUT folder: split_manifest.json and a LoRA adapter whose lineage names that manifest."""
    run = tmp_path_factory.mktemp("sft-run")
    _, manifest = load_task_split(
        None, "sft", source=str(dataset_file), sizes=split_sizes(), seed=42, manifest_path=run / "split_manifest.json"
    )
    make_adapter(tiny_model_dir, run / "adapter", str(tiny_model_dir), manifest_hash(manifest))
    return run


def split_sizes() -> dict[str, int]:
    return {name.removesuffix("_size"): size for name, size in SIZES.items()}


def make_adapter(base_dir: Path, out_dir: Path, lineage_base: str | None, split_hash: str | None = None) -> Path:
    """A freshly initialised LoRA adapter on the tiny model (B = 0, so merged == base) and, if asked, a lineage."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])).save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out_dir)
    if lineage_base is not None:
        lineage = {"phase": "grpo", "base": lineage_base, "split_manifest_hash": split_hash, "adapter_path": None}
        (out_dir / LINEAGE_FILE).write_text(json.dumps(lineage))
    return out_dir


def make_config(tmp_path: Path, dataset_file: Path, **overrides) -> EvalConfig:
    values = {
        "dataset_name": str(dataset_file),
        **SIZES,
        "max_new_tokens": 6,
        "batch_size": 4,
        "bootstrap_resamples": 200,
        "output_dir": str(tmp_path / "eval_results"),
        **overrides,
    }
    return EvalConfig(**values)


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"base": "Qwen/Qwen3-0.6B", "sft": "out/sft/merged"}, {"base": "Qwen/Qwen3-0.6B", "sft": "out/sft/merged"}),
        ("base=Qwen/Qwen3-0.6B, grpo=out/grpo/merged", {"base": "Qwen/Qwen3-0.6B", "grpo": "out/grpo/merged"}),
        ("only=./model", {"only": "./model"}),
    ],
)
def test_parse_models(value, expected):
    assert parse_models(value) == expected
    assert list(parse_models(value)) == list(expected)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (None, "no models"),
        ("", "empty"),
        ({}, "empty"),
        ("base", "label=source"),
        ("a=x,a=y", "duplicate"),
        ("=x", "name and a source"),
        ({"base": None}, "name and a source"),
        (3, "mapping"),
    ],
)
def test_parse_models_rejects(value, match):
    with pytest.raises(RecipeError, match=match):
        parse_models(value)


def test_yaml_config_with_command_line_overrides(tmp_path):
    recipe = tmp_path / "eval.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {"models": {"base": "Qwen/Qwen3-0.6B", "sft": "o/sft/merged"}, "batch_size": 8}, sort_keys=False
        )
    )
    (config,) = parse_recipe("eval", ["--config", str(recipe), "--limit", "20"])
    assert config.models == {"base": "Qwen/Qwen3-0.6B", "sft": "o/sft/merged"}
    assert (config.batch_size, config.limit, config.resolved_run_name) == (8, 20, "medmcqa-split-limit20")
    (config,) = parse_recipe(
        "eval",
        [
            "--config",
            str(recipe),
            "--models",
            "grpo=o/grpo/merged",
            "--eval_split",
            "validation",
            "--split_manifest",
            "",
        ],
    )
    assert config.models == {"grpo": "o/grpo/merged"}
    assert (config.split_manifest, config.resolved_run_name) == (None, "medmcqa-validation")


@pytest.mark.parametrize(
    "overrides",
    [{"batch_size": 0}, {"max_new_tokens": 0}, {"limit": 0}, {"precision": "int8"}, {"eval_size": 0}],
)
def test_bad_config_values(overrides):
    with pytest.raises(RecipeError):
        EvalConfig(**overrides)


def test_repository_configs_parse():
    (config,) = parse_recipe("eval", ["--config", str(REPO_ROOT / "configs" / "eval.yaml")])
    assert list(config.models) == ["base", "sft", "grpo"]
    assert config.models["base"] == "Qwen/Qwen3-0.6B"
    assert config.split_sizes == {"sft": 1000, "grpo": 500, "eval": 200}
    (demo,) = parse_recipe("eval", ["--config", str(REPO_ROOT / "configs" / "demo" / "eval.yaml")])
    sft = yaml.safe_load((REPO_ROOT / "configs" / "demo" / "sft.yaml").read_text())
    assert demo.split_sizes == {"sft": sft["sft_size"], "grpo": sft["grpo_size"], "eval": sft["eval_size"]}
    assert (demo.split_seed, demo.dataset_name, demo.run_name) == (sft["split_seed"], sft["dataset_name"], "demo")
    assert demo.split_manifest == "demo_artifacts/sft/split_manifest.json"


def test_eval_rows_are_the_training_eval_split(tmp_path, dataset_file):
    config = make_config(tmp_path, dataset_file, limit=5)
    eval_set = load_eval_sets(config)[0]
    expected, manifest = load_task_split(None, "eval", source=str(dataset_file), sizes=split_sizes(), seed=42)
    assert [row["id"] for row in eval_set.rows] == expected["id"][:5]
    assert eval_set.info["rows"] == 5 and eval_set.info["available_rows"] == 12
    assert eval_set.manifest == manifest


def test_split_check_verifies_the_models_training_split(tmp_path, dataset_file, training_run):
    models = {"base": "Qwen/Qwen3-0.6B", "sft": str(training_run / "adapter"), "other": "someone/model"}
    config = make_config(
        tmp_path, dataset_file, models=models, split_manifest=str(training_run / "split_manifest.json")
    )
    trained_on = manifest_hash(read_manifest(training_run / "split_manifest.json"))
    lineages = {"base": None, "sft": {"split_manifest_hash": trained_on}, "other": {"split_manifest_hash": "f" * 64}}
    eval_set, section, warnings = check_split(config, load_eval_sets(config)[0], lineages)
    assert section["manifest_hash"] == trained_on
    (checked,) = section["manifests_checked"]  # the adapter's own manifest is the configured one: checked once
    assert checked["overlap"] == {"sft": 0, "grpo": 0} and checked["origin"] == "config"
    assert section["models"] == {"base": NOT_FINE_TUNED, "sft": VERIFIED, "other": UNVERIFIED}
    assert len(warnings) == 1 and "other" in warnings[0] and "split_manifest" in warnings[0]
    assert len(eval_set.rows) == 12


def test_split_check_refuses_contaminated_eval_rows(tmp_path, dataset_file, training_run):
    manifest = read_manifest(training_run / "split_manifest.json")
    leaked = manifest["splits"]["eval"]["content_hashes"][:2]
    manifest["splits"]["sft"]["content_hashes"] += leaked
    path = tmp_path / "leaky_manifest.json"
    write_manifest(manifest, path)
    config = make_config(tmp_path, dataset_file, split_manifest=str(path))
    eval_set = load_eval_sets(config)[0]
    with pytest.raises(DatasetError, match=r"2 of 12 eval rows appear in a training split.*memorisation"):
        check_split(config, eval_set, {})
    config = make_config(tmp_path, dataset_file, split_manifest=str(path), drop_contaminated=True)
    kept, section, warnings = check_split(config, eval_set, {})
    assert len(kept.rows) == 10 and kept.info["dropped"]["in_training_split"] == 2
    assert not {content_hash(row) for row in kept.rows} & set(leaked)
    assert any("differs from" in w for w in warnings)  # the edited manifest no longer hashes like this split


def test_contamination_exits_2_before_loading_any_model(tmp_path, dataset_file, training_run, capsys):
    manifest = read_manifest(training_run / "split_manifest.json")
    manifest["splits"]["grpo"]["content_hashes"] += manifest["splits"]["eval"]["content_hashes"][:1]
    write_manifest(manifest, tmp_path / "leaky.json")
    argv = ["--models", "m=/nonexistent/model", "--dataset_name", str(dataset_file), "--split_manifest"]
    argv += [str(tmp_path / "leaky.json"), *(f"--{k}={v}" for k, v in SIZES.items())]
    argv += ["--output_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: load_script().main(argv))
    assert exit_info.value.code == EXIT_BAD_INPUT
    assert "appear in a training split" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unlabeled_official_split_exits_2(tmp_path, shared_dir, capsys):
    argv = ["--models", "m=/nonexistent/model", "--eval_split", "test", "--output_dir", str(tmp_path / "out")]
    argv += ["--dataset_name", str(shared_dir / "data" / "medmcqa" / "test_unlabeled.jsonl")]
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: load_script().main(argv))
    assert exit_info.value.code == EXIT_BAD_INPUT
    assert "answer_out_of_range" in capsys.readouterr().err


def test_bad_config_exits_2(capsys):
    script = REPO_ROOT / "scripts" / "eval_medmcqa.py"
    done = subprocess.run([sys.executable, str(script), "--models", "nolabel"], capture_output=True, text=True)
    assert done.returncode == EXIT_BAD_INPUT
    assert "label=source" in done.stderr and "Traceback" not in done.stderr


def test_help_loads_no_heavy_library():
    """`--help` answers in about a second because it imports no torch, transformers, datasets or plotting."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = [{str(REPO_ROOT / 'scripts' / 'eval_medmcqa.py')!r}, '--help']\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "heavy = ('torch', 'transformers', 'datasets', 'matplotlib', 'bitsandbytes', 'trl.trainer')\n"
        "print('loaded:', [name for name in heavy if name in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--fail_on_regression" in done.stdout and "loaded: []" in done.stdout


def test_setup_logging_drops_only_the_unactionable_bitsandbytes_line(caplog):
    import logging

    from fine_tune.cli import setup_logging

    setup_logging()
    setup_logging()  # idempotent: one filter
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    assert len(logger.filters) == 1
    with caplog.at_level(logging.WARNING):
        logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please ...", "no kernels")
        logger.warning("something else from bitsandbytes")
        logging.getLogger("other").warning("Failed to load CPU gemm_4bit_forward elsewhere")
    assert [record.getMessage() for record in caplog.records] == [
        "something else from bitsandbytes",
        "Failed to load CPU gemm_4bit_forward elsewhere",
    ]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, dataset_file, tiny_model_dir, training_run):
    """One evaluation of five models: two work, three fail in different ways (through the script's main)."""
    tmp = tmp_path_factory.mktemp("full-run")
    bad_lineage = make_adapter(tiny_model_dir, tmp / "bad-lineage", "Qwen/Qwen3-0.6B")
    (tmp / "empty").mkdir()
    models = {
        "base": str(tiny_model_dir),
        "lora": str(training_run / "adapter"),
        "bad_lineage": str(bad_lineage),
        "missing": str(tmp / "does-not-exist"),
        "empty": str(tmp / "empty"),
    }
    argv = ["--models", ",".join(f"{k}={v}" for k, v in models.items()), "--dataset_name", str(dataset_file)]
    argv += [*(f"--{k}={v}" for k, v in SIZES.items()), "--max_new_tokens", "6", "--batch_size", "4"]
    argv += ["--bootstrap_resamples", "200", "--output_dir", str(tmp / "eval_results"), "--run_name", "t"]
    code = load_script().main(argv)
    folder = tmp / "eval_results" / "t"
    return code, folder, json.loads((folder / RESULTS_FILE).read_text()), models


def test_failed_models_do_not_lose_the_others(full_run):
    code, folder, results, _ = full_run
    assert code == EXIT_MODEL_FAILED
    assert set(results) == TOP_LEVEL_KEYS
    assert results["failed"] == ["bad_lineage", "missing", "empty"]
    assert {label: m["status"] for label, m in results["models"].items()} == {
        "base": "ok",
        "lora": "ok",
        "bad_lineage": "failed",
        "missing": "failed",
        "empty": "failed",
    }
    for label in results["failed"]:
        assert results["models"][label]["stage"] == "load" and results["models"][label]["error"]
    assert "model path not found" in results["models"]["missing"]["error"]
    lines = (folder / PREDICTIONS_FILE).read_text().splitlines()
    assert len(lines) == 2 * 12
    assert set(json.loads(lines[0])) >= RECORD_KEYS
    report = (folder / REPORT_FILE).read_text()
    assert "FAILED" in report and "bad_lineage" in report
    assert all((folder / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in ("letters.png",))


def test_adapter_whose_lineage_disagrees_is_refused(full_run):
    _, _, results, models = full_run
    error = results["models"]["bad_lineage"]["error"]
    assert "ModelSourceError" in error and "Qwen/Qwen3-0.6B" in error and models["base"] in error
    assert "adapter_config.json" in error


def test_adapter_is_merged_onto_its_base(full_run):
    _, folder, results, models = full_run
    lora = results["models"]["lora"]
    assert lora["resolved"]["kind"] == "adapter" and lora["resolved"]["base"] == models["base"]
    assert lora["split_check"] == VERIFIED and results["models"]["base"]["split_check"] == NOT_FINE_TUNED
    assert results["split_check"]["manifests_checked"][0]["origin"] == "lineage of lora"
    # a fresh LoRA adapter (B = 0) merges to the base weights: the same text, flagged as suspicious
    predictions = [json.loads(line) for line in (folder / PREDICTIONS_FILE).read_text().splitlines()]
    by_model = {m: [p["raw_output"] for p in predictions if p["model"] == m] for m in ("base", "lora")}
    assert by_model["base"] == by_model["lora"]
    assert any("identical outputs" in w for w in results["warnings"])
    (pair,) = results["pairwise"]
    assert (pair["a"], pair["b"], pair["diff"], pair["mcnemar_p"]) == ("base", "lora", 0.0, 1.0)


def test_metrics_sections(full_run):
    _, _, results, _ = full_run
    base = results["models"]["base"]
    assert base["metrics"]["n"] == 12
    assert set(base["intervals"]) >= {"accuracy", "valid_json_rate", "schema_pass_rate", "accuracy_on_schema"}
    assert (
        base["intervals"]["accuracy"]["ci_low"]
        <= base["metrics"]["accuracy"]
        <= base["intervals"]["accuracy"]["ci_high"]
    )
    assert set(base["confusion_matrix"]) == {"A", "B", "C", "D"}
    assert sum(entry["n"] for entry in base["per_subject"].values()) == 12
    assert base["timings"]["generated_tokens"] > 0 and base["timings"]["samples_per_second"] > 0
    assert results["dataset"]["rows"] == 12 and results["dataset"]["eval_rows_hash"]


def test_rerun_gives_the_same_predictions(tmp_path, dataset_file, tiny_model_dir):
    config = make_config(tmp_path, dataset_file, models={"base": str(tiny_model_dir)}, limit=6)
    first = run_evaluation(config, console=quiet())
    text = (first.folder / PREDICTIONS_FILE).read_text()
    config.batch_size = 6
    second = run_evaluation(config, console=quiet())
    assert (second.folder / PREDICTIONS_FILE).read_text() == text
    assert first.folder == second.folder and first.exit_code == 0


def test_training_output_folder_means_its_merged_model(tmp_path, dataset_file, tiny_model_dir):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run / "merged")
    config = make_config(tmp_path, dataset_file, models={"m": str(run)}, limit=2, max_new_tokens=2)
    outcome = run_evaluation(config, console=quiet())
    assert outcome.results["models"]["m"]["resolved"]["path"] == str(run / "merged")


def test_a_merged_model_and_its_own_adapter_may_agree():
    records = [{"raw_output": "same"}]
    merged = ModelRun("m", "run/merged", resolved={"path": "run/merged", "lineage": {"adapter_path": "run/adapter"}})
    adapter = ModelRun("a", "run/adapter", resolved={"path": "run/adapter", "lineage": {"adapter_path": None}})
    other = ModelRun("o", "other", resolved={"path": "other", "lineage": None})
    for run in (merged, adapter, other):
        run.records = records
    warnings = identical_output_warnings([merged, adapter, other])
    assert len(warnings) == 2 and not any("m and a" in w for w in warnings)


def test_unreachable_hub_fails_the_model_fast(tmp_path, dataset_file, monkeypatch):
    monkeypatch.setattr(scored_models, "hub_available", lambda: False)
    config = make_config(tmp_path, dataset_file, models={"hub": "owner/model"}, limit=2)
    outcome = run_evaluation(config, console=quiet())
    assert outcome.exit_code == EXIT_MODEL_FAILED and outcome.failed == ["hub"]
    assert "is unreachable" in outcome.results["models"]["hub"]["error"]
    assert outcome.results["pairwise"] == [] and (outcome.folder / REPORT_FILE).is_file()


def test_official_validation_split_with_the_real_tokenizer(tmp_path, shared_dir, tiny_qwen3_model_dir):
    config = EvalConfig(
        models={"tiny": str(tiny_qwen3_model_dir)},
        dataset_name=str(shared_dir / "data" / "medmcqa" / "validation.jsonl"),
        eval_split="validation",
        limit=6,
        max_new_tokens=8,
        batch_size=3,
        bootstrap_resamples=100,
        output_dir=str(tmp_path),
    )
    outcome = run_evaluation(config, console=quiet())
    results = outcome.results
    assert outcome.exit_code == 0 and outcome.folder == tmp_path / "medmcqa-validation-limit6"
    assert results["dataset"]["available_rows"] == 4183 and results["dataset"]["rows"] == 6
    assert results["dataset"]["description"] == "official 'validation' split"
    assert results["split_check"]["manifest_hash"] is None
    model = results["models"]["tiny"]
    assert model["metrics"]["n"] == 6 and model["timings"]["hit_max_new_tokens"] <= 6
    lines = Path(config.dataset_name).read_text().splitlines()
    assert set(model["per_subject"]) <= {json.loads(line)["subject_name"] for line in lines}


def test_metric_intervals_use_the_right_denominators():
    metrics = {
        "n": 10,
        "correct": 4,
        "json_valid": 8,
        "schema_valid": 5,
        "correct_and_schema_valid": 3,
        "lenient_correct": 6,
        "lenient_schema_valid": 9,
        "accuracy": 0.4,
        "valid_json_rate": 0.8,
        "schema_pass_rate": 0.5,
        "accuracy_on_schema": 0.6,
        "lenient_accuracy": 0.6,
        "lenient_schema_pass_rate": 0.9,
    }
    intervals = metric_intervals(metrics)
    assert (intervals["accuracy_on_schema"]["count"], intervals["accuracy_on_schema"]["total"]) == (3, 5)
    assert intervals["accuracy"]["ci_low"] == pytest.approx(0.1682, abs=1e-4)  # Wilson 4/10
    assert intervals["accuracy"]["ci_high"] == pytest.approx(0.6873, abs=1e-4)


def test_pairwise_comparisons_skip_failed_models():
    def run(label, correct, status="ok"):
        return ModelRun(label, label, status=status, records=[{"correct": c} for c in correct])

    runs = [run("a", [1, 1, 1, 0]), run("b", [0, 1, 0, 0]), run("x", [], status="failed")]
    (pair,) = pairwise_comparisons(runs, resamples=500, seed=0)
    assert (pair["a"], pair["b"], pair["diff"], pair["b10"], pair["b01"]) == ("a", "b", 0.5, 2, 0)
    assert pair["mcnemar_p"] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def lineage_pair(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """An SFT output folder and a GRPO merged model whose lineage names the SFT merged model as its base."""
    import shutil

    root = tmp_path_factory.mktemp("lineage-pair")
    sft, grpo = root / "sft" / "merged", root / "grpo" / "merged"
    for path, lineage in (
        (sft, {"phase": "sft", "base": "Qwen/Qwen3-0.6B", "adapter_path": None}),
        (grpo, {"phase": "grpo", "base": str(sft), "adapter_path": None}),
    ):
        shutil.copytree(tiny_model_dir, path)
        (path / LINEAGE_FILE).write_text(json.dumps(lineage))
    return {"sft": root / "sft", "grpo": grpo}


def fake_generation(wrong_for: str, n_wrong: int, rows):
    """generate_responses stand-in: the gold answer to every question, except the first `n_wrong` answers of the
    model whose path contains `wrong_for`, which name the next letter instead."""
    from fine_tune.evaluate.generation import GenerationResult, generate_responses
    from fine_tune.task.prompts import LETTERS, format_question, gold_letter

    gold = {format_question(row): gold_letter(row) for row in rows}

    @bound_to(generate_responses)
    def generate(
        model, tokenizer, messages, *, batch_size=None, max_new_tokens=256, sort_by_length=True, progress=None
    ):
        texts = []
        for index, conversation in enumerate(messages):
            letter = gold[conversation[-1]["content"]]
            if wrong_for in model.name_or_path and index < n_wrong:
                letter = LETTERS[(LETTERS.index(letter) + 1) % len(LETTERS)]
            answer = {"predicted_category": letter, "confidence": 0.9, "reason": "Because."}
            texts.append(json.dumps(answer))
        return GenerationResult(texts, [20] * len(texts), [True] * len(texts), seconds=1.0)

    return generate


@pytest.mark.parametrize(("n_wrong", "expected_code"), [(8, EXIT_REGRESSION), (0, 0)])
def test_a_child_worse_than_its_lineage_parent_fails_the_eval(
    tmp_path, dataset_file, lineage_pair, monkeypatch, capsys, n_wrong, expected_code
):
    from fine_tune.evaluate import runs

    rows = load_task_split(None, "eval", source=str(dataset_file), sizes=split_sizes(), seed=42)[0]
    fake = fake_generation("grpo", n_wrong, rows)
    monkeypatch.setattr(runs, "generator_for", lambda backend: fake)
    models = f"sft={lineage_pair['sft']},grpo={lineage_pair['grpo']}"
    argv = ["--models", models, "--dataset_name", str(dataset_file), *(f"--{k}={v}" for k, v in SIZES.items())]
    argv += ["--output_dir", str(tmp_path), "--run_name", "r", "--fail_on_regression", "true"]
    with pytest.raises(SystemExit) if expected_code else contextlib.nullcontext() as exit_info:
        run_main(lambda: load_script().main(argv))
    assert (exit_info.value.code if expected_code else 0) == expected_code
    results = json.loads((tmp_path / "r" / RESULTS_FILE).read_text())
    report = (tmp_path / "r" / REPORT_FILE).read_text()
    captured = capsys.readouterr()
    stdout = captured.out
    unchecked, check = results["parent_checks"]  # sft's parent (the Hub base) was not scored here
    assert (unchecked["model"], unchecked["parent"]) == ("sft", None)
    assert (check["model"], check["parent"], check["parent_source"]) == (
        "grpo",
        "sft",
        str(lineage_pair["sft"] / "merged"),
    )
    assert check["accuracy"] == (12 - n_wrong) / 12 and check["parent_accuracy"] == 1.0
    if n_wrong:
        assert check["regressed"] and check["mcnemar_p"] == pytest.approx(2 / 2**8)
        assert results["regressions"] == [check]
        title, banner = report.split("\n\n")[:2]
        assert title.startswith("# medmcqa evaluation") and banner.startswith(
            "> **REGRESSION: grpo is significantly worse than its parent sft"
        )
        assert "REGRESSION: grpo" in " ".join(stdout.split())
        assert "error: regressed against its lineage parent: grpo" in captured.err
    else:
        assert not check["regressed"] and results["regressions"] == []
        assert "REGRESSION" not in report and "REGRESSION" not in stdout


def test_a_regression_fails_the_exit_status_only_when_asked(tmp_path):
    from fine_tune.evaluate.phase import EvalOutcome

    results = {"failed": ["x"], "regressions": [{"model": "grpo", "parent": "sft"}]}
    assert EvalOutcome(results, tmp_path, fail_on_regression=True).exit_code == EXIT_REGRESSION
    assert EvalOutcome(results, tmp_path).exit_code == EXIT_MODEL_FAILED
    assert EvalOutcome({**results, "failed": []}, tmp_path).exit_code == 0
    assert EvalOutcome({"failed": [], "regressions": []}, tmp_path, fail_on_regression=True).exit_code == 0


def test_one_load_and_one_generate_call_per_model_and_vllm_gets_the_gpu(monkeypatch, dataset_file, tiny_model_dir):
    """A base model's 0-shot and k-shot prompts go through one generate call; under vLLM the transformers copy is
    never moved to the GPU (vLLM loads its own from the saved weights)."""
    import torch

    from fine_tune.evaluate import runs
    from fine_tune.evaluate.generation import GenerationResult
    from fine_tune.evaluate.runs import run_models
    from fine_tune.evaluate.vllm_backend import generate_responses_vllm
    from fine_tune.models.precision import resolve_precision

    calls = []

    @bound_to(generate_responses_vllm)
    def fake_vllm(
        model, tokenizer, messages, *, batch_size=None, max_new_tokens=256, sort_by_length=True, progress=None
    ):
        calls.append(len(messages))
        assert all(p.device.type == "cpu" for p in model.parameters()), "the HF copy was moved to the GPU"
        return GenerationResult(["x"] * len(messages), [1] * len(messages), [True] * len(messages), 1.0)

    monkeypatch.setattr(runs, "resolve_backend", lambda setting: "vllm")
    monkeypatch.setattr(runs, "generator_for", lambda backend: fake_vllm)
    monkeypatch.setattr(runs, "inference_device", lambda: torch.device("meta"))
    config = EvalConfig(
        models={"base": str(tiny_model_dir)}, dataset_name=str(dataset_file), sft_size=20, grpo_size=0, eval_size=6
    )
    eval_set = load_eval_sets(config)[0]
    exemplars = {"medmcqa": [eval_set.rows[0], eval_set.rows[1]]}
    [per_set] = run_models(config, [eval_set], resolve_precision("fp32"), {}, Console(file=io.StringIO()), exemplars)
    assert calls == [12] and [run.label for run in per_set] == ["base", "base-2shot"]
    assert all(run.ok and len(run.records) == 6 for run in per_set)


def test_more_shots_than_sft_rows_is_one_line_naming_the_task(dataset_file):
    from fine_tune.evaluate.eval_set import fewshot_exemplars

    config = EvalConfig(models="b=x", dataset_name=str(dataset_file), sft_size=4, grpo_size=0, eval_size=4, shots=5)
    with pytest.raises(RecipeError, match="medmcqa: shots 5 but its SFT split has 4 rows to draw exemplars from"):
        fewshot_exemplars(config)
