"""Kill rate per module of the last `mutmut run` (read from mutants/**/*.py.meta), as a Markdown table.

python scripts/mutation_report.py [--survivors]

killed / (killed + survived + timeout + suspicious); mutants with no covering test count as survived, those not yet
run are listed apart. `--survivors` lists the surviving mutants (see them with `mutmut show NAME`).
"""

import argparse
import json
from pathlib import Path

from fine_tune.cli import OneLineArgumentParser, parse_only_exit, run_main
from fine_tune.errors import RecipeError

MUTANTS = Path("mutants")
COUNTED = ("killed", "survived", "no tests", "timeout", "suspicious")


def module_statuses(meta: Path) -> dict[str, str]:
    try:
        from mutmut.stats import status_by_exit_code
    except ImportError:
        raise RecipeError("mutation testing needs mutmut: pip install -e '.[mutation]' (or make mutation)") from None
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    return {name: status_by_exit_code[code] for name, code in codes.items()}


def main(argv=None) -> None:
    parser = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--survivors", action="store_true")
    args = parser.parse_args(argv)
    parse_only_exit("mutation_report.py")
    print("| module | mutants | killed | survived | timeout | not run | kill rate |\n|---|---|---|---|---|---|---|")
    survivors = []
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        statuses = module_statuses(meta)
        count = {status: sum(s == status for s in statuses.values()) for status in (*COUNTED, "not checked")}
        judged = sum(count[status] for status in COUNTED)
        survived = count["survived"] + count["no tests"]
        rate = f"{count['killed'] / judged:.1%}" if judged else "-"
        module = str(meta.relative_to(MUTANTS)).removesuffix(".meta")
        print(f"| {module} | {len(statuses)} | {count['killed']} | {survived} | {count['timeout']} | "
              f"{count['not checked']} | {rate} |")  # fmt: skip
        survivors += [name for name, status in statuses.items() if status in ("survived", "no tests")]
    if args.survivors:
        print("\n" + "\n".join(sorted(survivors)))


if __name__ == "__main__":
    run_main(main)
