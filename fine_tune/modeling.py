"""Model I/O in one place: precision from the hardware, loading by Hub ID or path, saving adapter + merged model with
a lineage record, resolving what a saved model really is, and pushing to the Hub."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

import fine_tune
from fine_tune.hub import TOKEN_ENV
from fine_tune.io import atomic_write_dir, atomic_write_json

logger = logging.getLogger(__name__)

LINEAGE_FILE = "lineage.json"
ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"
ADAPTER_CONFIG_FILE = "adapter_config.json"
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


class ModelSourceError(ValueError):
    """A model source that cannot be used as asked, with a message that says why and what to do."""


@dataclass(frozen=True)
class Precision:
    name: str
    torch_dtype: torch.dtype
    bf16: bool
    fp16: bool
    reason: str


def resolve_precision(requested: str = "auto") -> Precision:
    """bf16 only where the GPU runs it natively (compute capability >= 8), fp16 on older GPUs (T4), fp32 on CPU."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if requested == "auto":
        if not torch.cuda.is_available():
            requested, reason = "fp32", "no CUDA device: fp32 on CPU"
        else:
            major, minor = torch.cuda.get_device_capability()
            name = torch.cuda.get_device_name()
            if major >= 8:
                requested, reason = "bf16", f"{name} (sm_{major}{minor}) runs bf16 natively"
            else:
                requested, reason = "fp16", f"{name} (sm_{major}{minor}) has no native bf16: fp16 mixed precision"
    else:
        reason = "set in the config"
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[requested]
    return Precision(requested, dtype, bf16=requested == "bf16", fp16=requested == "fp16", reason=reason)


def hf_token(token_env: str = TOKEN_ENV) -> str | None:
    """The token from the environment variable named `token_env`; the value is never logged."""
    return os.environ.get(token_env) or None


def is_local(source: str | Path) -> bool:
    return Path(source).expanduser().exists()


def load_tokenizer(source: str, token: str | None = None, padding_side: str = "right"):
    tokenizer = AutoTokenizer.from_pretrained(source, token=token)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_causal_lm(
    source: str,
    dtype: torch.dtype | str,
    *,
    load_in_4bit: bool = False,
    attn_implementation: str | None = None,
    token: str | None = None,
):
    """Load a model by Hub ID or local path in `dtype` ("auto": as saved), optionally with 4-bit NF4 weights."""
    kwargs: dict[str, Any] = {"dtype": dtype, "token": token}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if load_in_4bit:
        if not torch.cuda.is_available():
            raise ModelSourceError("load_in_4bit needs a CUDA GPU (bitsandbytes); unset it to train on CPU")
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True,
        )
    logger.info("loading %s (dtype %s%s)", source, dtype, ", 4-bit" if load_in_4bit else "")
    return AutoModelForCausalLM.from_pretrained(source, **kwargs)


def git_commit() -> str | None:
    """The project's commit: from git, or from MEDMCQA_FT_GIT_COMMIT where the code was shipped without .git (jobs)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(fine_tune.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return os.environ.get("MEDMCQA_FT_GIT_COMMIT") or None
    return out.stdout.strip() or os.environ.get("MEDMCQA_FT_GIT_COMMIT") or None


def build_lineage(
    phase: str,
    base: str,
    *,
    config: dict[str, Any],
    split_manifest_hash: str | None,
    adapter_path: str | None = None,
) -> dict[str, Any]:
    return {
        "phase": phase,
        "base": base,
        "adapter_path": adapter_path,
        "config": config,
        "split_manifest_hash": split_manifest_hash,
        "project_version": fine_tune.__version__,
        "project_commit": git_commit(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def read_lineage(source: str, token: str | None = None, subfolder: str | None = None) -> dict[str, Any] | None:
    """The lineage record beside a saved model (local folder or Hub repo); None when there is none."""
    if is_local(source):
        path = Path(source).expanduser() / (subfolder or "") / LINEAGE_FILE
        return json.loads(path.read_text()) if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        path = hf_hub_download(source, LINEAGE_FILE, subfolder=subfolder, token=token)
    except EntryNotFoundError:
        return None
    return json.loads(Path(path).read_text())


def read_adapter_base(source: str, token: str | None = None, subfolder: str | None = None) -> str | None:
    """`base_model_name_or_path` from an adapter config, or None when `source` holds no adapter."""
    from peft import PeftConfig

    try:
        return PeftConfig.from_pretrained(source, subfolder=subfolder, token=token).base_model_name_or_path
    except (OSError, ValueError):
        return None


def save_adapter_and_merged(
    peft_model,
    tokenizer,
    output_dir: str | Path,
    *,
    base: str,
    lineage: dict[str, Any],
    token: str | None = None,
) -> dict[str, Path]:
    """Save the LoRA adapter and the merged model under `output_dir`, each with `lineage.json`.

    peft records `model.name_or_path` when a model is wrapped; the adapter config is rewritten to name `base`, the
    model this phase really started from. The merged model is rebuilt from a fresh copy of `base` plus the adapter,
    on the CPU in the dtype the base was saved in, so it never inherits quantisation or training-time state.
    """
    from peft import PeftModel

    output_dir = Path(output_dir)
    for config in peft_model.peft_config.values():
        config.base_model_name_or_path = base
    adapter_lineage = {**lineage, "base": base, "adapter_path": None}

    def write_adapter(tmp: Path) -> None:
        peft_model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / LINEAGE_FILE, adapter_lineage)

    adapter_dir = atomic_write_dir(output_dir / ADAPTER_DIR, write_adapter)
    merged_lineage = {**lineage, "base": base, "adapter_path": str(adapter_dir)}

    def write_merged(tmp: Path) -> None:
        fresh_base = load_causal_lm(base, "auto", token=token)
        merged = PeftModel.from_pretrained(fresh_base, adapter_dir).merge_and_unload()
        merged.name_or_path = str(output_dir / MERGED_DIR)
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / LINEAGE_FILE, merged_lineage)

    merged_dir = atomic_write_dir(output_dir / MERGED_DIR, write_merged)
    logger.info("saved adapter to %s and merged model to %s (base %s)", adapter_dir, merged_dir, base)
    return {"adapter": adapter_dir, "merged": merged_dir}


@dataclass
class ResolvedModel:
    """What a model source really is: the label's weights, and where they came from."""

    source: str
    kind: str  # "full" or "adapter"
    base: str | None
    lineage: dict[str, Any] | None


def resolve_model_source(source: str, token: str | None = None) -> ResolvedModel:
    """Classify `source` (a full model, or a LoRA adapter at its root) and cross-check its lineage.

    Refuses an adapter whose lineage record and adapter config name different bases: upstream evaluated the base
    model under the name "grpo" because the adapter config named the wrong base.
    """
    lineage = read_lineage(source, token=token)
    adapter_base = read_adapter_base(source, token=token)
    if adapter_base is None:
        return ResolvedModel(source, "full", lineage.get("base") if lineage else None, lineage)
    if lineage is not None and lineage.get("base") != adapter_base:
        raise ModelSourceError(
            f"{source} holds a LoRA adapter whose adapter_config.json names base {adapter_base!r}, but its "
            f"{LINEAGE_FILE} says it was trained from {lineage.get('base')!r}. Loading it would score the wrong "
            "model. Evaluate the merged model instead, or fix base_model_name_or_path in adapter_config.json."
        )
    return ResolvedModel(source, "adapter", adapter_base, lineage)


def load_for_inference(source: str, precision: Precision, token: str | None = None):
    """Load a model for generation: a full model as is, an adapter onto the base it names, merged."""
    from peft import PeftModel

    resolved = resolve_model_source(source, token=token)
    if resolved.kind == "adapter":
        base_model = load_causal_lm(resolved.base, precision.torch_dtype, token=token)
        model = PeftModel.from_pretrained(base_model, source, token=token).merge_and_unload()
    else:
        model = load_causal_lm(source, precision.torch_dtype, token=token)
    tokenizer = load_tokenizer(source, token=token, padding_side="left")
    model.eval()
    return model, tokenizer, resolved


def push_to_hub(output_dir: str | Path, repo_id: str, *, token: str | None, private: bool = False) -> str:
    """Upload the merged model at the repo root, the adapter under `adapter/`, then the model card (README.md) and
    the split manifest; returns the repo URL. The card replaces any earlier one (e.g. the Trainer's): a retrained
    model's old eval table no longer applies."""
    from huggingface_hub import CommitOperationAdd, HfApi

    from fine_tune.model_card import MODEL_CARD_FILE, SPLIT_MANIFEST_FILE, card_for_output_dir

    output_dir = Path(output_dir)
    card = card_for_output_dir(output_dir, repo_id, secret=token)
    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=output_dir / MERGED_DIR,
        commit_message="merged model",
        delete_patterns=["adapter_model.safetensors", ADAPTER_CONFIG_FILE],
    )
    api.upload_folder(
        repo_id=repo_id,
        folder_path=output_dir / ADAPTER_DIR,
        path_in_repo=ADAPTER_DIR,
        commit_message="LoRA adapter",
    )
    operations = [CommitOperationAdd(path_in_repo=MODEL_CARD_FILE, path_or_fileobj=card.encode())]
    if (output_dir / SPLIT_MANIFEST_FILE).is_file():
        operations.append(
            CommitOperationAdd(path_in_repo=SPLIT_MANIFEST_FILE, path_or_fileobj=str(output_dir / SPLIT_MANIFEST_FILE))
        )
    api.create_commit(repo_id=repo_id, operations=operations, commit_message="model card and split manifest")
    return str(url)
