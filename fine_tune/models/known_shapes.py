"""What the planner knows offline: the shapes of the recipe bases (their config.json fields) and the measured token
lengths of the tasks, so a dry run plans memory without the Hub."""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fine_tune.errors import ModelSourceError
from fine_tune.hub_access import is_hub_id, require_hub
from fine_tune.models.shape import LINEAR_NAMES, ModelShape

__all__ = ["KNOWN_MODEL_CONFIGS", "LINEAR_NAMES", "ModelShape", "offline_model_config", "read_model_config"]

logger = logging.getLogger(__name__)
# The token figures below are Qwen3's; other tokenizers write up to ~20% more tokens for the same English text
# (an allowance, not measured here).
TOKENIZER_MARGIN = 1.2


@dataclass(frozen=True)
class TokenLengths:
    prompt: int  # longest rendered generation prompt
    full: int  # longest rendered SFT example (prompt + target)
    source: str


# `scripts/validate_dataset.py --dataset_name ../shared/data/medmcqa/FILE --tokenizer ../shared/tokenizers/qwen3`
# (`--json`, its `token_lengths`): validation.jsonl (4,183 rows: prompt max 311, full max 412) and
# train_subset1000_partial.jsonl (1,000 rows: prompt max 463, full max 496); the larger of each. Other tasks: none yet
# (max_length applies).
MEASURED_TOKEN_LENGTHS: dict[str, TokenLengths] = {
    "medmcqa": TokenLengths(463, 496, "5,183 real MedMCQA rows, Qwen3 tokenizer"),
}


def task_token_lengths(task: Any) -> TokenLengths | None:
    """The task's longest prompt and SFT example in tokens, with the tokenizer margin; None when not measured."""
    measured = MEASURED_TOKEN_LENGTHS.get(task) if isinstance(task, str) else None
    if measured is None:
        return None
    return TokenLengths(
        math.ceil(measured.prompt * TOKENIZER_MARGIN),
        math.ceil(measured.full * TOKENIZER_MARGIN),
        f"{measured.source}, +{TOKENIZER_MARGIN - 1:.0%} for other tokenizers",
    )


def _decoder(model_type, hidden, intermediate, layers, heads, kv_heads, head_dim, vocab, tied) -> dict[str, Any]:
    return {
        "model_type": model_type,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
    }


# The shape fields of each recipe base's config.json, for planning without the Hub (read_model_config prefers the
# real file). Qwen3-4B and Llama-3-8B checked against public copies of their config.json; the others as published
# on their model pages (Qwen3 family table, Mistral v0.3, Gemma 3 4B with its 27-layer SigLIP tower), not re-checked
# offline here.
KNOWN_MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    "Qwen/Qwen3-0.6B": _decoder("qwen3", 1024, 3072, 28, 16, 8, 128, 151936, True),
    "Qwen/Qwen3-4B": _decoder("qwen3", 2560, 9728, 36, 32, 8, 128, 151936, True),
    "Qwen/Qwen3-8B": _decoder("qwen3", 4096, 12288, 36, 32, 8, 128, 151936, False),
    "mistralai/Mistral-7B-Instruct-v0.3": _decoder("mistral", 4096, 14336, 32, 32, 8, 128, 32768, False),
    "dmis-lab/llama-3-meerkat-8b-v1.0": _decoder("llama", 4096, 14336, 32, 32, 8, 128, 128256, False),
    "google/medgemma-4b-it": {
        "text_config": _decoder("gemma3_text", 2560, 10240, 34, 8, 4, 256, 262208, True),
        "vision_config": {
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_hidden_layers": 27,
            "image_size": 896,
            "patch_size": 14,
        },
        "model_type": "gemma3",
        "tie_word_embeddings": True,
    },
}


def offline_model_config(source: str | Path) -> dict[str, Any] | None:
    """config.json of a local model folder or file, or the stored shape of a known base; None otherwise (no network:
    what a job's dry run can know)."""
    path = Path(source).expanduser()
    if path.is_file():
        return json.loads(path.read_text())
    if (path / "config.json").is_file():
        return json.loads((path / "config.json").read_text())
    return KNOWN_MODEL_CONFIGS.get(str(source))


def read_model_config(source: str | Path, token: str | None = None, revision: str | None = None) -> dict[str, Any]:
    """config.json of a config file, a local model folder or a Hub repo (only that file is downloaded); a known base
    whose file cannot be fetched (offline) falls back to KNOWN_MODEL_CONFIGS."""
    path = Path(source).expanduser()
    if path.is_file():
        return json.loads(path.read_text())
    if path.is_dir() and (path / "config.json").is_file():
        return json.loads((path / "config.json").read_text())
    if str(source) in KNOWN_MODEL_CONFIGS and os.environ.get("HF_HUB_OFFLINE") == "1":
        return KNOWN_MODEL_CONFIGS[str(source)]
    if not is_hub_id(str(source)):
        raise ModelSourceError(
            f"{source}: no config.json there; pass --model_config with the base's Hub ID, model folder or "
            "config.json (a fine-tuned model has its base's shape)"
        )
    from huggingface_hub import hf_hub_download

    try:
        require_hub(str(source), "model", file="config.json")
    except ModelSourceError:
        if str(source) not in KNOWN_MODEL_CONFIGS:
            raise
        logger.info("config.json of %s cannot be fetched now: using its stored shape", source)
        return KNOWN_MODEL_CONFIGS[str(source)]
    try:
        return json.loads(
            Path(hf_hub_download(str(source), "config.json", token=token, revision=revision)).read_text()
        )
    except Exception as error:  # offline, gated or unreachable: the stored shape of a known base still plans
        if str(source) in KNOWN_MODEL_CONFIGS:
            logger.info("config.json of %s not fetched (%s): using its stored shape", source, type(error).__name__)
            return KNOWN_MODEL_CONFIGS[str(source)]
        raise ModelSourceError(
            f"cannot read config.json of {source} ({type(error).__name__}); pass --model_config with the base's "
            "Hub ID, model folder or config.json (a fine-tuned model has its base's shape)"
        ) from None
