"""On PYTHONPATH (tests/test_training.py), a diverging run: from step NAN_GRADIENTS_FROM_STEP on, every trainable
parameter's gradient is NaN. The project's code is left as it is; only the Trainer's flow callback is wrapped."""

import math
import os

from transformers.trainer_callback import DefaultFlowCallback

FROM_STEP = int(os.environ["NAN_GRADIENTS_FROM_STEP"])


def on_step_begin(self, args, state, control, model=None, **kwargs):
    if state.global_step + 1 == FROM_STEP and model is not None:
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.register_hook(lambda grad: grad.new_full(grad.shape, math.nan))
    return control


DefaultFlowCallback.on_step_begin = on_step_begin
