"""The SFT and GRPO phases: TRL trainers, checkpoints, guards."""
