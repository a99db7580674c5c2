from __future__ import annotations

import logging
from collections import deque

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class RewardHealthGuard(TrainerCallback):
    """Fires when every group's rewards are identical, or the mean reward is 0, for `patience` logging steps.

    Zero reward variance means zero advantages and no gradient: the upstream run "completed" 400 steps this way.
    """

    def __init__(self, patience: int, action: str, sample_completions=lambda: []):
        self.patience = patience
        self.action = action
        self.sample_completions = sample_completions
        self.recent: deque[str] = deque(maxlen=patience)
        self.message: str | None = None

    @staticmethod
    def problem(logs: dict[str, float]) -> str | None:
        if logs.get("frac_reward_zero_std") == 1.0:
            return f"frac_reward_zero_std = 1.0 (reward {logs.get('reward')})"
        if logs.get("reward") == 0.0:
            return "mean reward = 0.0"
        return None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or ("reward" not in logs and "frac_reward_zero_std" not in logs):
            return
        problem = self.problem(logs)
        if problem is None:
            self.recent.clear()
            return
        self.recent.append(f"step {state.global_step}: {problem}")
        if len(self.recent) < self.patience or self.message is not None:
            return
        samples = "\n".join(f"  {text!r}" for text in self.sample_completions()[-4:]) or "  (none captured)"
        self.message = (
            f"REWARD HEALTH GUARD: no learning signal for {self.patience} consecutive logging steps "
            f"({'; '.join(self.recent)}). Every completion in each group scored the same, so every advantage is 0 "
            "and GRPO learns nothing. Check that the reward functions parse TRL's conversational completions and "
            f"that Qwen3 runs with enable_thinking=False. Last completions:\n{samples}"
        )
        logger.error(self.message)
        if self.action == "stop":
            control.should_training_stop = True
