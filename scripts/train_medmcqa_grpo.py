"""GRPO phase: starts from the SFT merged model, rewards = JSON validity + schema compliance + accuracy.

python scripts/train_medmcqa_grpo.py --config configs/grpo.yaml [--max_steps 10 ...]
"""

from fine_tune.cli import parse_only_exit, run_main
from fine_tune.hub.publish import publish_phase
from fine_tune.hub_access import hf_token
from fine_tune.recipes.loader import parse_recipe
from fine_tune.train.grpo import run_grpo


def main(argv: list[str] | None = None) -> None:
    script_args, training_args, model_args = parse_recipe("grpo", argv)
    parse_only_exit("train_medmcqa_grpo.py")
    paths = run_grpo(script_args, training_args, model_args)
    publish_phase(training_args, hf_token(script_args.hf_token_env))
    for name, path in paths.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    run_main(main)
