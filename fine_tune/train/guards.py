"""The GRPO reward health guard: no learning signal, a reward component gamed away, or collapsed completions.

It reads only public routes: the metrics TRL logs (`reward`, `frac_reward_zero_std`, `rewards/<func>/mean`,
`completions/mean_length`) arrive through `on_log`, and the completions come from `CompletionRecorder`, which wraps
the reward functions and keeps the last batch they scored.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback

from fine_tune.task.parsing import completion_text

logger = logging.getLogger(__name__)

COMPONENT_PREFIX, COMPONENT_SUFFIX = "rewards/", "/mean"
LENGTH_KEY = "completions/mean_length"


class CompletionRecorder:
    """Wraps reward functions (name and signature kept) so the last scored batch of prompts and completions is kept."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.completions: list[str] = []

    def wrap(self, funcs: Sequence[Callable]) -> list[Callable]:
        return [self._recording(func) if i == 0 else func for i, func in enumerate(funcs)]

    def _recording(self, func: Callable) -> Callable:
        @functools.wraps(func)
        def recorded(*args: Any, **kwargs: Any):
            self.prompts = [str(p) for p in kwargs.get("prompts") or []]  # identity only: same prompt, same string
            self.completions = [completion_text(c) for c in kwargs.get("completions") or []]
            return func(*args, **kwargs)

        return recorded


@dataclass
class GuardThresholds:
    patience: int
    hacking_peak_min: float = 0.2
    hacking_floor_ratio: float = 0.1
    collapse_distinct_ratio: float = 0.5
    collapse_length_ratio: float = 0.25

    @classmethod
    def from_args(cls, args) -> GuardThresholds:
        return cls(
            patience=args.reward_guard_patience,
            hacking_peak_min=args.hacking_peak_min,
            hacking_floor_ratio=args.hacking_floor_ratio,
            collapse_distinct_ratio=args.collapse_distinct_ratio,
            collapse_length_ratio=args.collapse_length_ratio,
        )


def dead_signal(logs: dict[str, float]) -> str | None:
    """Every group's rewards identical (no advantage, no gradient), or nothing rewarded at all."""
    if logs.get("frac_reward_zero_std") == 1.0:
        return f"frac_reward_zero_std = 1.0 (reward {logs.get('reward')})"
    if logs.get("reward") == 0.0:
        return "mean reward = 0.0"
    return None


def windowed(values: Sequence[float], window: int) -> list[float]:
    """Trailing means over `window` values (shorter at the start)."""
    spans = [values[max(0, i + 1 - window) : i + 1] for i in range(len(values))]
    return [sum(span) / len(span) for span in spans]


def gamed_component(
    components: dict[str, list[float]], totals: list[float], steps: list[int], thresholds: GuardThresholds
) -> str | None:
    """A component whose windowed mean once reached `hacking_peak_min` and has fallen to `hacking_floor_ratio` of
    that peak: the policy stopped earning it. Named with its trajectory and what the total did meanwhile."""
    window = thresholds.patience
    if len(totals) < window:
        return None
    total_means = windowed(totals, window)
    for name, values in components.items():
        means = windowed(values, window)
        peak_at = max(range(len(means)), key=means.__getitem__)
        peak, now = means[peak_at], means[-1]
        learned = peak >= thresholds.hacking_peak_min and peak_at + window <= len(means)
        if not learned or now > thresholds.hacking_floor_ratio * peak:
            continue
        total_then, total_now = total_means[peak_at], total_means[-1]
        verdict = "held or rose" if total_now >= total_then - 0.05 * abs(total_then) else "fell"
        trajectory = ", ".join(f"step {s}: {v:.3f}" for s, v in _sampled(steps, values))
        return (
            f"reward component {name} fell from {peak:.3f} (mean of {window} logs to step {steps[peak_at]}) to "
            f"{now:.3f} while the total reward {verdict} ({total_then:.3f} -> {total_now:.3f}); "
            f"trajectory: {trajectory}"
        )
    return None


def collapsed(
    prompts: Sequence[str], completions: Sequence[str], lengths: list[float], thresholds: GuardThresholds
) -> str | None:
    """Completions that no longer depend on the prompt (few distinct outputs for many prompts), or shrank."""
    distinct_prompts = len(set(prompts))
    if distinct_prompts >= 2 and completions:
        distinct = len(set(completions))
        if distinct / distinct_prompts <= thresholds.collapse_distinct_ratio:
            return f"{distinct} distinct completions for {distinct_prompts} distinct prompts"
    window = thresholds.patience
    if len(lengths) >= 2 * window:
        first, now = sum(lengths[:window]) / window, sum(lengths[-window:]) / window
        if now <= thresholds.collapse_length_ratio * first:
            return f"mean completion length fell from {first:.1f} to {now:.1f} tokens"
    return None


def _sampled(steps: Sequence[int], values: Sequence[float], k: int = 8) -> list[tuple[int, float]]:
    stride = max(1, len(values) // k)
    picked = list(range(0, len(values), stride))
    if picked[-1] != len(values) - 1:
        picked.append(len(values) - 1)
    return [(steps[i], values[i]) for i in picked]


class RewardHealthGuard(TrainerCallback):
    """Fires (stop or warn) on any of three problems, each for `patience` consecutive logging steps:

    - dead signal: every group's rewards identical, or the mean reward 0 (zero advantages, no gradient);
    - a gamed component: a reward component that was earned early falls to near zero (e.g. valid JSON kept, schema
      dropped), which the total alone hides;
    - collapse: completions stop depending on the prompt, or their length collapses.
    """

    def __init__(self, thresholds: GuardThresholds, action: str, recorder: CompletionRecorder | None = None):
        self.thresholds = thresholds
        self.action = action
        self.recorder = recorder or CompletionRecorder()
        self.recent: deque[str] = deque(maxlen=thresholds.patience)
        self.steps: list[int] = []
        self.totals: list[float] = []
        self.components: dict[str, list[float]] = {}
        self.lengths: list[float] = []
        self.message: str | None = None

    @property
    def patience(self) -> int:
        return self.thresholds.patience

    def observe(self, step: int, logs: dict[str, float]) -> str | None:
        """Record one training log; the problem seen at this step, if any."""
        if "reward" in logs:
            self.steps.append(step)
            self.totals.append(float(logs["reward"]))
            for key, value in logs.items():
                if key.startswith(COMPONENT_PREFIX) and key.endswith(COMPONENT_SUFFIX) and value is not None:
                    name = key[len(COMPONENT_PREFIX) : -len(COMPONENT_SUFFIX)]
                    self.components.setdefault(name, []).append(float(value))
        if logs.get(LENGTH_KEY) is not None:
            self.lengths.append(float(logs[LENGTH_KEY]))
        return (
            dead_signal(logs)
            or gamed_component(self.components, self.totals, self.steps, self.thresholds)
            or collapsed(self.recorder.prompts, self.recorder.completions, self.lengths, self.thresholds)
        )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or ("reward" not in logs and "frac_reward_zero_std" not in logs):
            return
        problem = self.observe(state.global_step, logs)
        if problem is None:
            self.recent.clear()
            return
        self.recent.append(f"step {state.global_step}: {problem}")
        if len(self.recent) < self.patience or self.message is not None:
            return
        samples = "\n".join(f"  {text!r}" for text in self.recorder.completions[-4:]) or "  (none captured)"
        self.message = (
            f"REWARD HEALTH GUARD: unhealthy rewards for {self.patience} consecutive logging steps "
            f"({'; '.join(self.recent)}). Zero reward variance gives zero advantages (GRPO learns nothing); a reward "
            "component earned early and then lost, or prompt-independent completions, mean the policy is gaming the "
            "rewards. Check that the reward functions parse TRL's conversational completions, that Qwen3 runs with "
            "enable_thinking=False, and lower the learning rate. A smoke run of a few steps from a barely trained "
            "model earns no reward: that is expected there; add --reward_guard_action warn to let it finish. "
            f"Last completions:\n{samples}"
        )
        logger.error(self.message)
        if self.action == "stop":
            control.should_training_stop = True
