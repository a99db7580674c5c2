"""Tiny random-init stand-ins of each supported architecture (Qwen3, Llama 3, Mistral, Gemma 3 text), offline.

Each stand-in has the real model class, the real chat template and a tokenizer holding the same special tokens, so
every code path the real base goes through (template rendering, system-role folding, thinking switch, completion
masking, stop tokens) runs in the tests. The tokenizer is either a given one (e.g. the real Qwen3 tokenizer) or a
small byte-level BPE trained on the fly with Qwen2's pre-tokenizer split rule. Templates come from TRL's byte-exact
copies of the shipped ones (`trl/chat_templates/`); TRL ships none for Mistral v0.3, whose template is passed as a
file (`../shared/tokenizers/templates/mistralai__Mistral-7B-Instruct-v0.3.jinja`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (
    AutoTokenizer,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from fine_tune.data.synthetic import generate_canonical_rows
from fine_tune.errors import ModelSourceError
from fine_tune.task.prompts import sft_example

QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
TINY_VOCAB_SIZE = 1024
TINY_CORPUS_ROWS = 2000
# Wide enough that tied, frozen random embeddings can still express confident next-token distributions (the
# default 0.02 caps logits near +-1 at hidden size 64, and LoRA cannot sharpen them).
TINY_INITIALIZER_RANGE = 0.2


@dataclass(frozen=True)
class TinyArchitecture:
    """What a stand-in copies from its real family: model class, special tokens, chat template, stop tokens."""

    name: str
    real_bases: tuple[str, ...]
    config_class: type[PretrainedConfig]
    model_class: type
    special_tokens: tuple[str, ...]  # first ones get the lowest ids, as in the real vocabularies
    eos_token: str
    stop_tokens: tuple[str, ...]  # generation_config.eos_token_id of the real instruct model
    bos_token: str | None = None
    pad_token: str | None = None  # None where the real tokenizer has no pad token (loading falls back to eos)
    unk_token: str | None = None
    added_tokens: tuple[str, ...] = ()  # ordinary added tokens (Qwen3's <think> markers)
    trl_template: str | None = None  # file under trl/chat_templates/; None: the template must be passed

    def template(self, chat_template: str | Path | None = None) -> str:
        if chat_template is not None:
            return Path(chat_template).read_text()
        if self.trl_template is None:
            raise ModelSourceError(
                f"TRL ships no {self.name} chat template: pass its file (e.g. ../shared/tokenizers/templates/"
                "mistralai__Mistral-7B-Instruct-v0.3.jinja)"
            )
        return files("trl").joinpath("chat_templates", self.trl_template).read_text()


ARCHITECTURES: dict[str, TinyArchitecture] = {
    arch.name: arch
    for arch in (
        TinyArchitecture(
            "qwen3",
            ("Qwen/Qwen3-0.6B", "Qwen/Qwen3-4B", "Qwen/Qwen3-8B"),
            Qwen3Config,
            Qwen3ForCausalLM,
            special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
            eos_token="<|im_end|>",
            stop_tokens=("<|im_end|>", "<|endoftext|>"),
            pad_token="<|endoftext|>",
            added_tokens=("<think>", "</think>"),
            trl_template="qwen3.jinja",
        ),
        TinyArchitecture(
            "llama3",
            ("meta-llama/Meta-Llama-3-8B-Instruct", "dmis-lab/llama-3-meerkat-8b-v1.0"),
            LlamaConfig,
            LlamaForCausalLM,
            special_tokens=(
                "<|begin_of_text|>",
                "<|end_of_text|>",
                "<|start_header_id|>",
                "<|end_header_id|>",
                "<|eot_id|>",
            ),
            bos_token="<|begin_of_text|>",
            eos_token="<|eot_id|>",
            stop_tokens=("<|end_of_text|>", "<|eot_id|>"),
            trl_template="llama3.jinja",
        ),
        TinyArchitecture(
            "mistral",
            ("mistralai/Mistral-7B-Instruct-v0.3",),
            MistralConfig,
            MistralForCausalLM,
            special_tokens=("<unk>", "<s>", "</s>", "[INST]", "[/INST]"),
            bos_token="<s>",
            eos_token="</s>",
            unk_token="<unk>",
            stop_tokens=("</s>",),
        ),
        TinyArchitecture(
            "gemma3",
            ("google/medgemma-4b-it", "google/gemma-3-4b-it"),
            Gemma3TextConfig,
            Gemma3ForCausalLM,
            special_tokens=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
            bos_token="<bos>",
            eos_token="<eos>",
            pad_token="<pad>",
            unk_token="<unk>",
            stop_tokens=("<eos>", "<end_of_turn>"),
            trl_template="gemma3.jinja",
        ),
    )
}


def tokenizer_corpus(seed: int = 0, n_rows: int = TINY_CORPUS_ROWS) -> list[str]:
    """Texts the tiny tokenizer is trained on: full chat renderings of synthetic rows (prompt and target)."""
    texts = []
    for row in generate_canonical_rows(n_rows, seed=seed):
        example = sft_example(row)
        texts += [f"{m['role']}\n{m['content']}" for m in example["prompt"] + example["completion"]]
    return texts


def train_tiny_tokenizer(
    texts: Iterable[str], arch: TinyArchitecture | str = "qwen3", vocab_size: int = TINY_VOCAB_SIZE, **template_kw
) -> PreTrainedTokenizerFast:
    arch = ARCHITECTURES[arch] if isinstance(arch, str) else arch
    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(arch.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    named = {arch.eos_token, arch.bos_token, arch.pad_token, arch.unk_token}
    named_kwargs = {"eos_token": arch.eos_token, "bos_token": arch.bos_token, "pad_token": arch.pad_token}
    named_kwargs["unk_token"] = arch.unk_token
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        **{key: token for key, token in named_kwargs.items() if token is not None},
        additional_special_tokens=[token for token in arch.special_tokens if token not in named],
        clean_up_tokenization_spaces=False,
    )
    if arch.added_tokens:
        tokenizer.add_tokens(list(arch.added_tokens))
    tokenizer.chat_template = arch.template(**template_kw)
    return tokenizer


def _token_id(tokenizer, token: str | None) -> int | None:
    return None if token is None else tokenizer.convert_tokens_to_ids(token)


def tiny_config(
    arch: TinyArchitecture | str, tokenizer, hidden_size: int = 64, num_layers: int = 2
) -> PretrainedConfig:
    """A 2-layer, 4-head (2 KV heads) config of the architecture, sized to the tokenizer, fp32, tied embeddings."""
    arch = ARCHITECTURES[arch] if isinstance(arch, str) else arch
    shape: dict = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": hidden_size * 4,
        "num_hidden_layers": num_layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": hidden_size // 4,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
        "initializer_range": TINY_INITIALIZER_RANGE,
        "eos_token_id": _token_id(tokenizer, arch.eos_token),
        "pad_token_id": _token_id(tokenizer, arch.pad_token),
        "bos_token_id": _token_id(tokenizer, arch.bos_token),
        "dtype": "float32",
    }
    if arch.name == "gemma3":
        shape["sliding_window"] = 64  # Gemma 3 alternates local (sliding) and global attention layers
        shape["layer_types"] = ["sliding_attention", "full_attention"] * (num_layers // 2) + ["sliding_attention"] * (
            num_layers % 2
        )
    return arch.config_class(**shape)


def build_tiny_model(
    out_dir: str | Path,
    tokenizer_source: str | Path | None = None,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    arch: str = "qwen3",
    chat_template: str | Path | None = None,
) -> Path:
    """Write a random-init tiny model of `arch` + tokenizer to `out_dir`; same arguments -> identical files.

    `tokenizer_source` replaces the trained BPE by a real tokenizer (it must carry the architecture's template);
    `chat_template` is a template file (required for Mistral, optional otherwise).
    """
    architecture = ARCHITECTURES[arch]
    out_dir = Path(out_dir)
    if tokenizer_source is None:
        tokenizer = train_tiny_tokenizer(tokenizer_corpus(seed=seed), architecture, chat_template=chat_template)
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
        if chat_template is not None:
            tokenizer.chat_template = Path(chat_template).read_text()
    config = tiny_config(architecture, tokenizer, hidden_size=hidden_size, num_layers=num_layers)
    torch.manual_seed(seed)
    model = architecture.model_class(config)
    stops = [_token_id(tokenizer, token) for token in architecture.stop_tokens]
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=stops,
        pad_token_id=config.pad_token_id if config.pad_token_id is not None else stops[0],
        do_sample=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
