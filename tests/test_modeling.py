import json
import shutil

import pytest
import torch
from hub_fakes import fake_hub_pushes
from peft import LoraConfig, get_peft_model
from signatures import patch_bound
from transformers import AutoModelForCausalLM, AutoTokenizer

from fine_tune.constants import ADAPTER_DIR, LINEAGE_FILE, MERGED_DIR
from fine_tune.errors import ModelSourceError
from fine_tune.hub import publish
from fine_tune.models.lineage import Lineage, read_lineage
from fine_tune.models.loading import load_for_inference
from fine_tune.models.precision import resolve_precision
from fine_tune.models.saving import save_adapter_and_merged
from fine_tune.models.source import resolve_model_source


@pytest.mark.parametrize(
    ("capability", "expected"),
    [((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")],
)
def test_precision_follows_the_gpu(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    patch_bound(monkeypatch, torch.cuda, "get_device_capability", lambda device=None: capability)
    patch_bound(monkeypatch, torch.cuda, "get_device_name", lambda device=None: "GPU")
    precision = resolve_precision("auto")
    assert precision.name == expected
    assert (precision.bf16, precision.fp16) == (expected == "bf16", expected == "fp16")


def test_precision_on_cpu_and_explicit(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_precision("auto").torch_dtype == torch.float32
    assert resolve_precision("fp16").fp16 and resolve_precision("fp16").reason == "set in the config"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("float8")


def lora_model(model_dir, seed=0):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(model, config)


@pytest.fixture(scope="module")
def saved_run(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    peft_model = lora_model(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    lineage = Lineage(phase="sft", base=str(tiny_model_dir), config={"lr": 1.0}, split_manifest_hash="abc")
    save_adapter_and_merged(peft_model, tokenizer, out, base=str(tiny_model_dir), lineage=lineage)
    return out, peft_model


def test_merged_model_reproduces_the_adapter_model(saved_run):
    out, peft_model = saved_run
    merged = AutoModelForCausalLM.from_pretrained(out / MERGED_DIR)
    ids = torch.tensor([[1, 5, 9, 42, 7]])
    peft_model.eval()
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, peft_model(ids).logits, atol=1e-5)
    assert not (out / MERGED_DIR / "adapter_config.json").exists()


def test_saved_models_record_the_true_base_and_lineage(saved_run, tiny_model_dir):
    out, _ = saved_run
    adapter_config = json.loads((out / ADAPTER_DIR / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tiny_model_dir)
    merged_lineage = read_lineage(str(out / MERGED_DIR))
    assert merged_lineage["phase"] == "sft"
    assert merged_lineage["base"] == str(tiny_model_dir)
    assert merged_lineage["adapter_path"] == str(out / ADAPTER_DIR)
    assert merged_lineage["split_manifest_hash"] == "abc"
    assert {"project_version", "project_commit", "date", "config"} <= set(merged_lineage)
    assert read_lineage(str(out / ADAPTER_DIR))["base"] == str(tiny_model_dir)
    assert read_lineage(str(out)) is None


def test_peft_records_the_base_we_name_not_name_or_path(tiny_model_dir, tmp_path):
    """Upstream's GRPO adapter recorded Qwen/Qwen3-0.6B because peft stores model.name_or_path at wrap time."""
    sft_merged = tmp_path / "sft" / "merged"
    shutil.copytree(tiny_model_dir, sft_merged)
    peft_model = lora_model(tiny_model_dir)
    assert peft_model.peft_config["default"].base_model_name_or_path == str(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    lineage = Lineage(phase="grpo", base=str(sft_merged), config={}, split_manifest_hash=None)
    save_adapter_and_merged(peft_model, tokenizer, tmp_path / "grpo", base=str(sft_merged), lineage=lineage)
    adapter_config = json.loads((tmp_path / "grpo" / ADAPTER_DIR / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(sft_merged)
    assert resolve_model_source(str(tmp_path / "grpo" / ADAPTER_DIR)).base == str(sft_merged)


def test_resolve_model_source(saved_run, tiny_model_dir):
    out, _ = saved_run
    assert resolve_model_source(str(out / MERGED_DIR)).kind == "full"
    adapter = resolve_model_source(str(out / ADAPTER_DIR))
    assert (adapter.kind, adapter.base) == ("adapter", str(tiny_model_dir))
    assert resolve_model_source(str(tiny_model_dir)).lineage is None


def test_adapter_whose_lineage_disagrees_is_refused(saved_run, tmp_path):
    out, _ = saved_run
    bad = tmp_path / "grpo-adapter"
    bad.mkdir()
    for path in (out / ADAPTER_DIR).iterdir():
        (bad / path.name).write_bytes(path.read_bytes())
    lineage = json.loads((bad / LINEAGE_FILE).read_text())
    (bad / LINEAGE_FILE).write_text(json.dumps({**lineage, "base": "USER/medmcqa-sft"}))
    with pytest.raises(ModelSourceError, match="would score the wrong model"):
        resolve_model_source(str(bad))


def test_adapter_loads_onto_its_base_and_merges(saved_run):
    out, _ = saved_run
    fp32 = resolve_precision("fp32")
    from_adapter, tokenizer, resolved = load_for_inference(str(out / ADAPTER_DIR), fp32)
    from_merged, _, _ = load_for_inference(str(out / MERGED_DIR), fp32)
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    with torch.no_grad():
        assert torch.allclose(from_adapter(ids).logits, from_merged(ids).logits, atol=1e-5)
    assert tokenizer.padding_side == "left" and resolved.kind == "adapter"


def test_push_uploads_merged_at_root_and_adapter_in_subfolder(saved_run, monkeypatch):
    out, _ = saved_run
    calls = []

    fake_hub_pushes(monkeypatch, calls)  # every HfApi method the push calls, bound to the real signature
    url = publish.push_to_hub(out, "user/medmcqa-sft", token="hf_secret", private=True)
    assert url == "https://hub.example/user/medmcqa-sft"
    assert [c[0] for c in calls] == ["create_repo", "upload_folder", "upload_folder", "create_commit"]
    uploads = [c[1] for c in calls if c[0] == "upload_folder"]
    merged_upload = next(c for c in uploads if str(c["folder_path"]) == str(out / MERGED_DIR))
    adapter_upload = next(c for c in uploads if str(c["folder_path"]) == str(out / ADAPTER_DIR))
    assert merged_upload["path_in_repo"] in (None, "", ".")
    assert "adapter_config.json" in merged_upload["delete_patterns"], "a stale root adapter would shadow the merged"
    assert adapter_upload["path_in_repo"] == ADAPTER_DIR


def model_args(model_dir, **overrides):
    from trl import ModelConfig

    fields = {"model_name_or_path": str(model_dir), "use_peft": True, "lora_r": 4, "lora_alpha": 8}
    return ModelConfig(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"load_in_4bit": True, "use_peft": False}, "load_in_4bit needs use_peft"),
        ({"load_in_8bit": True, "use_peft": False}, "load_in_8bit needs use_peft"),
        ({"use_peft": False}, "use_peft: false is not supported"),
        ({"bnb_4bit_quant_type": "fp4"}, "bnb_4bit_quant_type is set but load_in_4bit is not"),
        ({"use_bnb_nested_quant": True}, "use_bnb_nested_quant is set but load_in_4bit is not"),
        ({"bnb_4bit_quant_storage": "uint8"}, "bnb_4bit_quant_storage is set but load_in_4bit is not"),
        ({"lora_task_type": "SEQ_CLS"}, "lora_task_type must be CAUSAL_LM"),
        ({"dtype": "bfloat16"}, "dtype 'bfloat16' conflicts with the precision's 'float32'"),
    ],
)
def test_model_config_options_are_refused_not_ignored(tiny_model_dir, overrides, message):
    from fine_tune.errors import RecipeError
    from fine_tune.models.loading import model_init_kwargs

    with pytest.raises(RecipeError, match=message):
        model_init_kwargs(model_args(tiny_model_dir, **overrides), torch.float32)


def test_model_config_options_reach_from_pretrained(tiny_model_dir):
    from fine_tune.models.loading import model_init_kwargs

    kwargs = model_init_kwargs(
        model_args(
            tiny_model_dir,
            load_in_4bit=True,
            bnb_4bit_quant_type="fp4",
            use_bnb_nested_quant=True,
            model_revision="v1",
            attn_implementation="eager",
        ),
        torch.bfloat16,
        trust_remote_code=True,
    )
    quant = kwargs["quantization_config"]
    assert (quant.load_in_4bit, quant.bnb_4bit_quant_type, quant.bnb_4bit_use_double_quant) == (True, "fp4", True)
    assert quant.bnb_4bit_compute_dtype == torch.bfloat16, "4-bit compute runs in the precision's dtype"
    assert (kwargs["revision"], kwargs["trust_remote_code"], kwargs["attn_implementation"]) == ("v1", True, "eager")
    assert kwargs["dtype"] == torch.bfloat16 and set(kwargs["device_map"]) == {""}
    assert model_init_kwargs(model_args(tiny_model_dir, dtype="bfloat16"), torch.bfloat16)["dtype"] == torch.bfloat16
    eight = model_init_kwargs(model_args(tiny_model_dir, load_in_8bit=True), torch.float32)["quantization_config"]
    assert eight.load_in_8bit and not eight.load_in_4bit


@pytest.mark.parametrize("nested", [True, False])
def test_a_bf16_4bit_load_is_prepared_for_kbit_training_and_nested_quant_reaches_the_weights(tiny_model_dir, nested):
    """On a bf16 load only k-bit preparation puts the norms in fp32; nested (double) quantisation is read from the
    loaded weights' bitsandbytes quant state, not the recorded config."""
    from fine_tune.models.loading import load_model_for_training

    args = model_args(tiny_model_dir, load_in_4bit=True, use_bnb_nested_quant=nested, dtype="bfloat16")
    model = load_model_for_training(args, torch.bfloat16)
    layer = model.model.layers[0]
    assert layer.input_layernorm.weight.dtype == torch.float32, "k-bit prep casts the bf16 norms to fp32"
    assert model.model.norm.weight.dtype == torch.float32
    assert model.get_input_embeddings().weight.dtype == torch.float32
    assert all(not p.requires_grad for p in model.parameters()), "k-bit prep freezes the base"
    quantised = [module.weight for module in model.modules() if type(module).__name__ == "Linear4bit"]
    assert quantised and all(weight.quant_state.nested is nested for weight in quantised)
    assert all(weight.quant_state.quant_type == "nf4" for weight in quantised)


def test_qlora_on_cpu_loads_4bit_trains_the_adapter_and_merges_into_a_full_precision_base(tiny_model_dir, tmp_path):
    """The whole QLoRA path on CPU (bitsandbytes 0.50 runs 4-bit NF4 matmuls and their backward on CPU)."""
    import bitsandbytes as bnb
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer, get_peft_config

    from fine_tune.data.synthetic import generate_canonical_rows
    from fine_tune.models.loading import full_precision_adapters, load_model_for_training
    from fine_tune.task.prompts import sft_example

    args = model_args(
        tiny_model_dir, load_in_4bit=True, use_bnb_nested_quant=True, lora_target_modules=["q_proj", "v_proj"]
    )
    model = load_model_for_training(args, torch.float32)
    assert isinstance(model.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    assert model.model.layers[0].self_attn.q_proj.weight.quant_type == "nf4"
    assert model.model.layers[0].input_layernorm.weight.dtype == torch.float32, "k-bit prep keeps norms in fp32"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    dataset = Dataset.from_list([sft_example(row) for row in generate_canonical_rows(16, seed=0)])
    config = SFTConfig(
        output_dir=str(tmp_path / "ckpt"), bf16=False, report_to="none", max_steps=3, learning_rate=1e-2,
        per_device_train_batch_size=4, logging_steps=1, save_strategy="no", use_cpu=True,
    )  # fmt: skip
    trainer = SFTTrainer(model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=get_peft_config(args))  # fmt: skip
    full_precision_adapters(trainer.model)
    adapter_dtypes = {p.dtype for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert adapter_dtypes == {torch.float32}, "TRL casts QLoRA adapters to bf16; they train in fp32 here"
    lora_before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    moved = [not torch.equal(p, lora_before[n]) for n, p in trainer.model.named_parameters() if "lora_B" in n]
    assert moved and all(moved), "every LoRA B matrix was updated"

    lineage = Lineage(phase="sft", base=str(tiny_model_dir), config={}, split_manifest_hash=None)
    paths = save_adapter_and_merged(
        trainer.model, tokenizer, tmp_path / "out", base=str(tiny_model_dir), lineage=lineage
    )
    merged = AutoModelForCausalLM.from_pretrained(paths["merged"])
    assert getattr(merged.config, "quantization_config", None) is None
    assert merged.model.layers[0].self_attn.q_proj.weight.dtype == torch.float32
    recorded = read_lineage(str(paths["merged"]))["quantization"]
    assert (recorded["load_in_4bit"], recorded["bnb_4bit_quant_type"], recorded["bnb_4bit_use_double_quant"]) == (
        True,
        "nf4",
        True,
    )
    assert read_lineage(str(paths["adapter"]))["quantization"] == recorded
    from peft import PeftModel

    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), paths["adapter"])
    reference.eval()
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, reference(ids).logits, atol=1e-4)
        base_logits = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(ids).logits
        assert not torch.allclose(merged(ids).logits, base_logits, atol=1e-4), "the merge changed the base"


def test_lineage_record_round_trips_and_reads_legacy_class_keys(tmp_path):
    from fine_tune.models.lineage import Lineage, model_config, run_config, script_config, training_config

    legacy = {
        "phase": "sft",
        "base": "Qwen/Qwen3-0.6B",
        "config": {"MedMCQAScriptArguments": {"a": 1}, "MedSFTConfig": {"b": 2}, "ModelConfig": {"c": 3}},
        "split_manifest_hash": "abc",
        "future_key": [1, 2],
    }
    record = Lineage.from_dict(legacy)
    roles = (script_config(record.to_dict()), training_config(record.to_dict()), model_config(record.to_dict()))
    assert roles == ({"a": 1}, {"b": 2}, {"c": 3})
    assert record.to_dict()["future_key"] == [1, 2] and record.quantization is None
    record.write(tmp_path)
    assert read_lineage(str(tmp_path))["config"] == legacy["config"]

    from dataclasses import dataclass

    @dataclass
    class Script:
        a: int = 1

    roles = run_config(Script(), Script(a=2), Script(a=3))
    assert list(roles) == ["script", "training", "model"]
    fresh = {"config": roles}
    assert (script_config(fresh), training_config(fresh), model_config(fresh)) == ({"a": 1}, {"a": 2}, {"a": 3})


def test_a_missing_tokenizer_is_one_line(tmp_path):
    from fine_tune.errors import ModelSourceError
    from fine_tune.models.loading import load_tokenizer

    with pytest.raises(ModelSourceError, match="tokenizer not found: "):
        load_tokenizer(str(tmp_path / "no" / "such_model"))
