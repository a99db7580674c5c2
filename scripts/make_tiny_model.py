"""Write a tiny random-init Qwen3-architecture model for offline tests and the demo.

python scripts/make_tiny_model.py --out demo_artifacts/tiny-model [--tokenizer ../shared/tokenizers/qwen3]
"""

import argparse

from fine_tune.models.tiny import build_tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write the model and tokenizer to")
    parser.add_argument("--tokenizer", help="tokenizer to use (ID or path); default: a small BPE trained here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden_size", type=int, default=64)
    parser.add_argument("--num_layers", type=int, default=2)
    args = parser.parse_args()
    out = build_tiny_model(args.out, args.tokenizer, args.seed, args.hidden_size, args.num_layers)
    print(out)


if __name__ == "__main__":
    main()
