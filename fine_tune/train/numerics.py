"""Stop at the first non-finite loss or gradient: a NaN run learns nothing and costs its full job time.

The Trainer's `logging_nan_inf_filter` (on by default) hides NaN/inf step losses from the logs, and the gradient
norm is logged only every `logging_steps`, so the guard reads the gradients themselves before each optimizer step
(a NaN or infinite loss makes them non-finite) and also checks every logged loss and gradient norm.

Under fp16 mixed precision the loss scaler overflows now and then by design: the step is skipped and the scale
halved. So with fp16 the guard stops only after `FP16_OVERFLOW_PATIENCE` consecutive non-finite steps (the scale then
fell 2**10-fold and the values are still not finite: the model itself produces NaN/inf).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import TrainerCallback

from fine_tune.errors import NumericsError

logger = logging.getLogger(__name__)
FP16_OVERFLOW_PATIENCE = 10
RERUN_HINT = (
    "rerun with --precision fp32, or --precision bf16 on a GPU that has it (compute capability 8.0+: A10G, L4, A100, "
    "H100); fp16 fine-tuning of Qwen2/Qwen3 is a known source of NaN/inf losses"
)


NON_FINITE_SAMPLING = "probability tensor contains either `inf`, `nan` or element < 0"  # torch.multinomial's error


def precision_label(args) -> str:
    """The precision the run trains in, and the recipe value it came from when that was `auto`."""
    resolved = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"
    asked = getattr(args, "precision", resolved)
    return resolved if asked == resolved else f"{resolved} (precision: {asked})"


@contextmanager
def non_finite_sampling_stops(trainer) -> Iterator[None]:
    """GRPO samples completions with torch.multinomial, which raises a RuntimeError when the policy's probabilities
    are NaN or infinite (its logits overflowed or its weights are NaN): the same one line and exit 3 instead."""
    try:
        yield
    except RuntimeError as error:
        if NON_FINITE_SAMPLING not in str(error):
            raise
        step = trainer.state.global_step + 1
        NonFiniteGuard.fail(f"non-finite sampling probabilities in the generation of step {step}", trainer.args)


def gradients_finite(model: torch.nn.Module) -> bool:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return not grads or bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))


class NonFiniteGuard(TrainerCallback):
    """Raises NumericsError (exit 3) naming the step and the precision at the first non-finite loss or gradient."""

    def __init__(self, fp16_patience: int = FP16_OVERFLOW_PATIENCE):
        self.fp16_patience = fp16_patience
        self.overflows = 0

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if model is None or gradients_finite(model):
            self.overflows = 0
            return
        self.overflows += 1
        if args.fp16 and self.overflows < self.fp16_patience:
            logger.info("fp16 overflow at step %d: the loss scaler skips it", state.global_step + 1)
            return
        runs = f" ({self.overflows} steps in a row)" if self.overflows > 1 else ""
        self.fail(f"non-finite gradients at step {state.global_step + 1}{runs}", args)

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "grad_norm") if not args.fp16 else ("loss",):
            value = (logs or {}).get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                self.fail(f"{key} = {value} logged at step {state.global_step}", args)

    @staticmethod
    def fail(what: str, args) -> None:
        raise NumericsError(f"{what} under precision {precision_label(args)}: training stopped; {RERUN_HINT}")
