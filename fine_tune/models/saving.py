"""Saving a trained adapter and a merged model (rebuilt on a fresh full-precision base) with lineage, and pushing
them to the Hub with their model card and split manifest."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fine_tune.constants import ADAPTER_DIR, MERGED_DIR
from fine_tune.io import atomic_write_dir
from fine_tune.models.lineage import Lineage, quantization_record
from fine_tune.models.loading import load_causal_lm

logger = logging.getLogger(__name__)


def save_adapter_and_merged(
    peft_model,
    tokenizer,
    output_dir: str | Path,
    *,
    base: str,
    lineage: Lineage | Mapping[str, Any],
    token: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Path]:
    """Save the LoRA adapter and the merged model under `output_dir`, each with `lineage.json`.

    peft records `model.name_or_path` when a model is wrapped; the adapter config is rewritten to name `base`, the
    model this phase really started from. The merged model is rebuilt from a fresh copy of `base` plus the adapter,
    on the CPU in the dtype the base was saved in, so it never inherits quantisation or training-time state (a QLoRA
    adapter trained against 4-bit weights is merged into the full-precision base). Lineage records the quantisation
    the adapter was trained under.
    """
    from peft import PeftModel

    output_dir = Path(output_dir)
    for config in peft_model.peft_config.values():
        config.base_model_name_or_path = base
    lineage = lineage if isinstance(lineage, Lineage) else Lineage.from_dict(lineage)
    adapter_lineage = lineage.replace(base=base, adapter_path=None, quantization=quantization_record(peft_model))

    def write_adapter(tmp: Path) -> None:
        peft_model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        adapter_lineage.write(tmp)

    adapter_dir = atomic_write_dir(output_dir / ADAPTER_DIR, write_adapter)
    merged_lineage = adapter_lineage.replace(adapter_path=str(adapter_dir))

    def write_merged(tmp: Path) -> None:
        fresh_base = load_causal_lm(base, "auto", token=token, revision=revision, trust_remote_code=trust_remote_code)
        merged = PeftModel.from_pretrained(fresh_base, adapter_dir).merge_and_unload()
        merged.name_or_path = str(output_dir / MERGED_DIR)
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        merged_lineage.write(tmp)

    merged_dir = atomic_write_dir(output_dir / MERGED_DIR, write_merged)
    logger.info("saved adapter to %s and merged model to %s (base %s)", adapter_dir, merged_dir, base)
    return {"adapter": adapter_dir, "merged": merged_dir}
