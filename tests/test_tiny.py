import hashlib

from transformers import AutoModelForCausalLM, AutoTokenizer
from trl.chat_template_utils import qwen3_chat_template

from fine_tune.models.tiny import EOS_TOKEN, PAD_TOKEN, build_tiny_model


def file_digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_tiny_model_loads_with_qwen3_architecture_and_template(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen3"
    assert 100_000 <= model.num_parameters() <= 2_000_000
    assert tokenizer.chat_template == qwen3_chat_template, "TRL recognises only its byte-exact Qwen3 template"
    assert tokenizer.eos_token == EOS_TOKEN and tokenizer.pad_token == PAD_TOKEN
    assert model.config.eos_token_id == tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    for token in ("<think>", "</think>", "<|im_start|>"):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token


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
