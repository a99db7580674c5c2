"""The models a benchmark measures: the tiny model (CPU) and a random-init model of Qwen3-0.6B's exact shape (GPU)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.cost import QWEN3_0_6B, QWEN3_0_6B_SHAPE, ModelShape


def qwen3_0_6b_config(vocab_size: int | None = None, pad_token_id: int | None = None, eos_token_id: int | None = None):
    from transformers import Qwen3Config

    values = {**QWEN3_0_6B, "vocab_size": vocab_size or QWEN3_0_6B["vocab_size"]}
    return Qwen3Config(**values, pad_token_id=pad_token_id, eos_token_id=eos_token_id, bos_token_id=None)


@dataclass
class ModelSource:
    """How a benchmark builds a fresh copy of its model: from a saved folder, or random-init from a config."""

    name: str
    tokenizer_dir: str
    model_dir: str | None = None
    config: Any = None

    @property
    def is_qwen3_0_6b_shape(self) -> bool:
        """Random-init Qwen3-0.6B with its real vocabulary: what job figures may be measured on."""
        if self.config is None:
            return False
        shape = self.shape()
        return dataclasses.replace(shape, name=QWEN3_0_6B_SHAPE.name) == QWEN3_0_6B_SHAPE

    def build(self, dtype: torch.dtype, seed: int = 0, attn_implementation: str = "sdpa"):
        from transformers import AutoModelForCausalLM

        if self.model_dir is not None:
            return AutoModelForCausalLM.from_pretrained(
                self.model_dir, dtype=dtype, attn_implementation=attn_implementation
            )
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(self.config, dtype=dtype, attn_implementation=attn_implementation)

    def shape(self) -> ModelShape:
        from transformers import AutoConfig

        config = self.config if self.config is not None else AutoConfig.from_pretrained(self.model_dir)
        return ModelShape.from_config(config, name=self.name)


def tiny_source(work_dir: Path, tokenizer_dir: Path | None = None, name: str = "tiny") -> ModelSource:
    from fine_tune.models.tiny import build_tiny_model

    out = work_dir / name
    if not (out / "config.json").is_file():
        build_tiny_model(out, tokenizer_source=str(tokenizer_dir) if tokenizer_dir else None, seed=0)
    return ModelSource(name=name, tokenizer_dir=str(out), model_dir=str(out))


def qwen3_shape_source(tokenizer_dir: str) -> ModelSource:
    """Qwen3-0.6B's exact shape (random init); the real vocabulary when the tokenizer is the real one."""
    from fine_tune.models.loading import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    real_vocabulary = len(tokenizer) > 100_000
    # With a small stand-in tokenizer the vocabulary shrinks to it, so every generated id decodes
    vocab = QWEN3_0_6B["vocab_size"] if real_vocabulary else len(tokenizer)
    config = qwen3_0_6b_config(vocab, tokenizer.pad_token_id, tokenizer.eos_token_id)
    name = "qwen3-0.6b-shape (random init)" + ("" if real_vocabulary else f", vocabulary {vocab}")
    return ModelSource(name=name, tokenizer_dir=tokenizer_dir, config=config)
