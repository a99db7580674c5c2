"""Runs a training script unchanged, and before it saves, writes each rank's trainable weights to
`$PROBE_DIR/rank<N>.pt`, so a test can check that the processes of a multi-process launch hold the same weights.

python tests/distributed_probe.py scripts/train_medmcqa_sft.py --config ...   (under accelerate launch or torchrun)
"""

import os
import runpy
import sys
from pathlib import Path

import torch

from fine_tune.train import common, grpo, sft


def dump_trainable_weights(trainer, directory: Path) -> None:
    model = trainer.accelerator.unwrap_model(trainer.model)
    weights = {
        name: p.detach().to("cpu", torch.float32).clone() for name, p in model.named_parameters() if p.requires_grad
    }
    torch.save(
        {"world_size": trainer.args.world_size, "weights": weights}, directory / f"rank{trainer.args.process_index}.pt"
    )


def probing_finish(trainer, *args, **kwargs):
    dump_trainable_weights(trainer, Path(os.environ["PROBE_DIR"]))
    return common.finish(trainer, *args, **kwargs)


if __name__ == "__main__":
    sft.finish = grpo.finish = probing_finish
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
