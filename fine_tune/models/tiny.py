"""A tiny random-init Qwen3-architecture model for offline tests and the demo.

The tokenizer is either a given one (e.g. the real Qwen3 tokenizer) or a small byte-level BPE trained on the fly with
Qwen2's pre-tokenizer split rule, the ChatML special tokens and the Qwen3 chat template that TRL recognises, so every
code path (chat template, non-thinking mode, completion masking) is the one the real model goes through.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, GenerationConfig, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM
from trl.chat_template_utils import qwen3_chat_template

from fine_tune.data.synthetic import generate_rows
from fine_tune.task.prompts import sft_example

QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
THINK_TOKENS = ("<think>", "</think>")
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
TINY_VOCAB_SIZE = 1024
TINY_CORPUS_ROWS = 2000
# Wide enough that tied, frozen random embeddings can still express confident next-token distributions (the
# default 0.02 caps logits near +-1 at hidden size 64, and LoRA cannot sharpen them).
TINY_INITIALIZER_RANGE = 0.2


def tokenizer_corpus(seed: int = 0, n_rows: int = TINY_CORPUS_ROWS) -> list[str]:
    """Texts the tiny tokenizer is trained on: full chat renderings of synthetic rows (prompt and target)."""
    texts = []
    for row in generate_rows(n_rows, seed=seed):
        example = sft_example(row)
        texts += [f"{m['role']}\n{m['content']}" for m in example["prompt"] + example["completion"]]
    return texts


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int = TINY_VOCAB_SIZE) -> PreTrainedTokenizerFast:
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
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[SPECIAL_TOKENS[1]],
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_tokens(list(THINK_TOKENS))
    tokenizer.chat_template = qwen3_chat_template
    return tokenizer


def tiny_qwen3_config(tokenizer, hidden_size: int = 64, num_layers: int = 2) -> Qwen3Config:
    return Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 4,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden_size // 4,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        initializer_range=TINY_INITIALIZER_RANGE,
        eos_token_id=tokenizer.convert_tokens_to_ids(EOS_TOKEN),
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN),
        bos_token_id=None,
        dtype="float32",
    )


def build_tiny_model(
    out_dir: str | Path,
    tokenizer_source: str | Path | None = None,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
) -> Path:
    """Write a random-init tiny Qwen3 model + tokenizer to `out_dir`; same seed -> identical files."""
    out_dir = Path(out_dir)
    if tokenizer_source is None:
        tokenizer = train_tiny_tokenizer(tokenizer_corpus(seed=seed))
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
    config = tiny_qwen3_config(tokenizer, hidden_size=hidden_size, num_layers=num_layers)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[config.eos_token_id, config.pad_token_id],
        pad_token_id=config.pad_token_id,
        do_sample=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
