"""A decoder-only model's shape, read from its config (a config.json dict or a transformers config): the one place
that counts its parameters, for the memory planner (fine_tune.hub.jobs.memory) and the benchmark's FLOP and
activation accounting (benchmarks.cost). Torch-free at import."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
QK_NORM_TYPES = ("qwen3", "qwen3_moe", "gemma3", "gemma3_text")  # per-head RMSNorm on q and k


@dataclass(frozen=True)
class ModelShape:
    name: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tied: bool = True
    extra_params: int = 0  # e.g. a vision tower loaded with the language model (MedGemma)
    vision_linear_params: int = 0  # the part of extra_params in nn.Linear layers (bitsandbytes quantises them)
    vision_linear_rows: int = 0
    qk_norm: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | Any, name: str | None = None) -> ModelShape:
        """From a config.json dict or a transformers config (a multimodal config's `text_config` is the decoder; its
        vision tower counts in `extra_params`)."""
        config = dict(config.to_dict() if hasattr(config, "to_dict") else config)
        text = dict(config.get("text_config") or config)
        missing = [
            k for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size") if k not in text
        ]
        if missing:
            raise ValueError(f"config.json lacks {', '.join(missing)}: not a decoder-only language model config")
        heads = text["num_attention_heads"]
        vision = config.get("vision_config")
        model_type = text.get("model_type") or config.get("model_type") or ""
        return cls(
            name=name or config.get("_name_or_path") or config.get("model_type") or "",
            vocab_size=text["vocab_size"],
            hidden_size=text["hidden_size"],
            intermediate_size=text.get("intermediate_size") or 4 * text["hidden_size"],
            num_layers=text["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=text.get("num_key_value_heads") or heads,
            head_dim=text.get("head_dim") or text["hidden_size"] // heads,
            tied=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
            extra_params=vision_params(vision) if vision else 0,
            vision_linear_params=vision_linear_params(vision) if vision else 0,
            vision_linear_rows=vision_linear_rows(vision) if vision else 0,
            qk_norm=model_type in QK_NORM_TYPES,
        )

    def qwen3_config(self, **overrides: Any):
        """A transformers Qwen3Config of exactly this shape (tied embedding)."""
        from transformers import Qwen3Config

        values = {
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "tie_word_embeddings": True,
        }
        return Qwen3Config(**{**values, **overrides})

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear module of one decoder layer."""
        q, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        d, i = self.hidden_size, self.intermediate_size
        return {
            "q_proj": (d, q),
            "k_proj": (d, kv),
            "v_proj": (d, kv),
            "o_proj": (q, d),
            "gate_proj": (d, i),
            "up_proj": (d, i),
            "down_proj": (i, d),
        }

    @property
    def backbone_linear_params(self) -> int:
        """The non-embedding linear weights (q, k, v, o, gate, up, down of every layer)."""
        return self.num_layers * sum(a * b for a, b in self.linear_shapes().values())

    @property
    def lm_head_params(self) -> int:
        return self.hidden_size * self.vocab_size

    @property
    def embedding_params(self) -> int:
        """Input embedding plus LM head (one matrix when tied)."""
        return self.lm_head_params * (1 if self.tied else 2)

    @property
    def params(self) -> int:
        """All parameters but the norms."""
        return self.backbone_linear_params + self.embedding_params + self.extra_params

    @property
    def norm_params(self) -> int:
        """RMSNorm weights: two per layer and the final one, plus per-head q/k norms where the family has them."""
        return self.num_layers * (2 * self.hidden_size + (2 * self.head_dim if self.qk_norm else 0)) + self.hidden_size

    @property
    def quantised_linear_params(self) -> int:
        """Weights bitsandbytes quantises: every nn.Linear but the LM head (decoder and vision tower linears)."""
        return self.backbone_linear_params + self.vision_linear_params

    @property
    def quantised_rows(self) -> int:
        """Output rows of the quantised linears (8-bit keeps one fp32 scale per row)."""
        per_layer = sum(out for _, out in self.linear_shapes().values())
        return self.num_layers * per_layer + self.vision_linear_rows

    @property
    def unquantised_params(self) -> int:
        """What stays unquantised on a k-bit base: embeddings, LM head, norms, a vision tower's non-linear parts."""
        return self.embedding_params + self.norm_params + self.extra_params - self.vision_linear_params

    def lora_params(self, rank: int, targets: Sequence[str]) -> int:
        """LoRA A + B parameters: rank x (in + out) of each targeted linear of every layer."""
        shapes = self.linear_shapes()
        return self.num_layers * sum(rank * sum(shapes[t]) for t in targets if t in shapes)

    @property
    def attention_coefficient(self) -> int:
        """L * H * d_head: attention FLOPs per (query, key) pair are 4x this forward, 12x forward + backward."""
        return self.num_layers * self.num_heads * self.head_dim

    def weight_bytes(self, bytes_per_param: int) -> int:
        """Weights read by one decode step (tied embedding counted once, as the LM head)."""
        return (self.backbone_linear_params + self.lm_head_params) * bytes_per_param

    def kv_bytes_per_token(self, bytes_per_value: int) -> int:
        return self.num_layers * 2 * self.num_kv_heads * self.head_dim * bytes_per_value


def vision_linear_params(vision: Mapping[str, Any]) -> int:
    """A ViT encoder's linears: attention q, k, v, out (4h^2) and MLP fc1, fc2 (2hi) per layer (SigLIP)."""
    h, i = vision.get("hidden_size", 0), vision.get("intermediate_size", 0)
    return vision.get("num_hidden_layers", 0) * (4 * h * h + 2 * h * i)


def vision_linear_rows(vision: Mapping[str, Any]) -> int:
    h, i = vision.get("hidden_size", 0), vision.get("intermediate_size", 0)
    return vision.get("num_hidden_layers", 0) * (5 * h + i)


def vision_params(vision: Mapping[str, Any]) -> int:
    """A ViT encoder's parameters, e.g. Gemma 3's SigLIP tower (~0.4B): its linears plus the patch embedding
    (3 x patch^2 x h) and one position embedding per patch."""
    h = vision.get("hidden_size", 0)
    patch = vision.get("patch_size", 14)
    patches = (vision.get("image_size", 896) // patch) ** 2 if h else 0
    return vision_linear_params(vision) + (3 * patch * patch + patches) * h
