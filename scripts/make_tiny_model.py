"""Write a tiny random-init model of one architecture (qwen3, llama3, mistral, gemma3) for offline tests and the demo.

python scripts/make_tiny_model.py --out demo_artifacts/tiny-model [--tokenizer ../shared/tokenizers/qwen3]
python scripts/make_tiny_model.py --out /tmp/tiny-mistral --arch mistral \
    --chat_template ../shared/tokenizers/templates/mistralai__Mistral-7B-Instruct-v0.3.jinja
"""

import argparse

from fine_tune.cli import OneLineArgumentParser, parse_only_exit, run_main
from fine_tune.models.tiny import ARCHITECTURES, build_tiny_model


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write the model and tokenizer to")
    parser.add_argument("--tokenizer", help="tokenizer to use (ID or path); default: a small BPE trained here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden_size", type=int, default=64)
    parser.add_argument("--num_layers", type=int, default=2)
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="qwen3")
    parser.add_argument("--chat_template", help="chat template file (.jinja); required for mistral")
    args = parser.parse_args(argv)
    parse_only_exit("make_tiny_model.py")
    out = build_tiny_model(
        args.out, args.tokenizer, args.seed, args.hidden_size, args.num_layers, args.arch, args.chat_template
    )
    print(out)


if __name__ == "__main__":
    run_main(main)
