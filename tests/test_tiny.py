import hashlib

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl.chat_template_utils import qwen3_chat_template

from fine_tune.errors import ModelSourceError
from fine_tune.models.tiny import ARCHITECTURES, build_tiny_model

SHARED_TEMPLATES = {
    "qwen3": "Qwen__Qwen3-0.6B.jinja",
    "llama3": "meta-llama__Meta-Llama-3-8B-Instruct.jinja",
    "mistral": "mistralai__Mistral-7B-Instruct-v0.3.jinja",
    "gemma3": "google__gemma-3-4b-it.jinja",
}
MODEL_TYPES = {"qwen3": "qwen3", "llama3": "llama", "mistral": "mistral", "gemma3": "gemma3_text"}


def file_digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_tiny_model_loads_with_qwen3_architecture_and_template(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen3"
    assert 100_000 <= model.num_parameters() <= 2_000_000
    assert tokenizer.chat_template == qwen3_chat_template, "TRL recognises only its byte-exact Qwen3 template"
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert model.config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    for token in ("<think>", "</think>", "<|im_start|>"):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_each_stand_in_has_its_family_class_template_and_tokens(tiny_arch_dirs, shared_dir, arch):
    spec = ARCHITECTURES[arch]
    model = AutoModelForCausalLM.from_pretrained(tiny_arch_dirs[arch])
    tokenizer = AutoTokenizer.from_pretrained(tiny_arch_dirs[arch])
    assert model.config.model_type == MODEL_TYPES[arch] and isinstance(model, spec.model_class)
    assert 100_000 <= model.num_parameters() <= 2_000_000
    shipped = (shared_dir / "tokenizers" / "templates" / SHARED_TEMPLATES[arch]).read_text()
    assert tokenizer.chat_template == shipped, "the stand-in must carry the byte-exact shipped template"
    for token in spec.special_tokens:
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token
    stops = model.generation_config.eos_token_id
    assert sorted(stops) == sorted(tokenizer.convert_tokens_to_ids(list(spec.stop_tokens)))
    assert tokenizer.eos_token == spec.eos_token and tokenizer.bos_token == spec.bos_token


def test_mistral_needs_its_template_file(tmp_path):
    with pytest.raises(ModelSourceError, match="TRL ships no mistral chat template"):
        build_tiny_model(tmp_path / "m", arch="mistral")


def test_tiny_model_is_deterministic_from_its_seed(tmp_path, tiny_model_dir):
    again = build_tiny_model(tmp_path / "again", seed=0)
    other = build_tiny_model(tmp_path / "other", seed=1)
    assert file_digests(again) == file_digests(tiny_model_dir)
    assert file_digests(other)["model.safetensors"] != file_digests(again)["model.safetensors"]


def test_tiny_model_with_the_real_qwen3_tokenizer(tmp_path, shared_dir):
    out = build_tiny_model(tmp_path / "tiny-qwen3", tokenizer_source=shared_dir / "tokenizers" / "qwen3", seed=0)
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.vocab_size == len(tokenizer) == 151_669
