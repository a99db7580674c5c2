from __future__ import annotations

from dataclasses import dataclass, field

from trl import ScriptArguments

from fine_tune.constants import DEFAULT_SPLIT_SEED, DEFAULT_SPLIT_SIZES, MEDMCQA_HUB_ID, TOKEN_ENV
from fine_tune.task.rewards import REWARD_FUNCS


@dataclass
class SplitArguments:
    """Where the data comes from and how it is split: the same in every phase, so each can prove its rows disjoint."""

    dataset_name: str | None = field(
        default=MEDMCQA_HUB_ID, metadata={"help": "Hub dataset ID or local path (JSONL/JSON/Parquet/CSV/save_to_disk)"}
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split of the source that is shuffled"})
    split_seed: int = field(default=DEFAULT_SPLIT_SEED, metadata={"help": "Seed of the upstream shuffle"})
    sft_size: int = field(default=DEFAULT_SPLIT_SIZES["sft"])
    grpo_size: int = field(default=DEFAULT_SPLIT_SIZES["grpo"])
    eval_size: int = field(default=DEFAULT_SPLIT_SIZES["eval"])
    hf_token_env: str = field(default=TOKEN_ENV, metadata={"help": "Name of the env var holding the Hub token"})

    @property
    def split_sizes(self) -> dict[str, int]:
        return {"sft": self.sft_size, "grpo": self.grpo_size, "eval": self.eval_size}


@dataclass
class MedMCQAScriptArguments(SplitArguments, ScriptArguments):
    """TRL's script arguments with the project's data source and split."""


@dataclass
class GRPOScriptArguments(MedMCQAScriptArguments):
    reward_funcs: list[str] = field(
        default_factory=lambda: ["json_validity_reward", "schema_compliance_reward", "accuracy_reward"],
        metadata={"help": f"Reward functions by registry name: {sorted(REWARD_FUNCS)}"},
    )
    require_sft_lineage: bool = field(
        default=True, metadata={"help": "Refuse a starting model whose lineage.json does not say phase 'sft'"}
    )
