"""SFT phase: LoRA on the SFT split, saving adapter + merged model with lineage.

python scripts/train_medmcqa_sft.py --config configs/sft.yaml [--max_steps 10 ...]
"""

from fine_tune.cli import parse_only_exit, run_main
from fine_tune.hub.publish import publish_phase
from fine_tune.hub_access import hf_token
from fine_tune.recipes.loader import parse_recipe
from fine_tune.train.sft import run_sft


def main(argv: list[str] | None = None) -> None:
    script_args, training_args, model_args = parse_recipe("sft", argv)
    parse_only_exit("train_medmcqa_sft.py")
    paths = run_sft(script_args, training_args, model_args)
    publish_phase(training_args, hf_token(script_args.hf_token_env))
    for name, path in paths.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    run_main(main)
