"""Write tests/fixtures/vllm/engine_args.json from a vLLM wheel: the keywords `vllm.LLM(...)` accepts (its own
parameters, and through its **kwargs the `EngineArgs` dataclass fields), read from the wheel's source without
installing vLLM (it needs CUDA). The CPU tests' vLLM stand-in (tests/vllm_fakes.py) refuses any other keyword.

pip download vllm==0.31.0 --no-deps -d /tmp/vllm
python scripts/vllm_engine_args.py /tmp/vllm/vllm-0.31.0-cp38-abi3-manylinux_2_28_x86_64.whl
"""

import argparse
import ast
import hashlib
import zipfile
from pathlib import Path

from fine_tune.cli import OneLineArgumentParser, parse_only_exit, run_main
from fine_tune.errors import DatasetError
from fine_tune.io import atomic_write_json

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "vllm" / "engine_args.json"
ENGINE_ARGS = "vllm/engine/arg_utils.py"
LLM = "vllm/entrypoints/llm.py"


def _class(tree: ast.Module, name: str, path: str) -> ast.ClassDef:
    found = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    if found is None:
        raise DatasetError(f"{path}: no class {name}")
    return found


def dataclass_fields(source: str) -> list[str]:
    """The annotated fields of `EngineArgs`, ClassVars left out."""
    fields = []
    for node in _class(ast.parse(source), "EngineArgs", ENGINE_ARGS).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            annotation = node.annotation
            if not (isinstance(annotation, ast.Subscript) and getattr(annotation.value, "id", None) == "ClassVar"):
                fields.append(node.target.id)
    return fields


def llm_parameters(source: str) -> list[str]:
    init = next(
        (
            n
            for n in _class(ast.parse(source), "LLM", LLM).body
            if isinstance(n, ast.FunctionDef) and n.name == "__init__"
        ),
        None,
    )
    if init is None:
        raise DatasetError(f"{LLM}: LLM has no __init__")
    return [a.arg for a in [*init.args.args, *init.args.kwonlyargs] if a.arg != "self"]


def read_wheel(wheel: Path) -> dict:
    try:
        with zipfile.ZipFile(wheel) as archive:
            engine, llm = (archive.read(name).decode() for name in (ENGINE_ARGS, LLM))
    except (OSError, zipfile.BadZipFile, KeyError) as error:
        raise DatasetError(f"{wheel}: not a vLLM wheel with {ENGINE_ARGS} and {LLM} ({error})") from None
    return {
        "what": "The keywords vllm.LLM(...) accepts: its own parameters, and (through **kwargs) the fields of "
        "vllm.engine.arg_utils.EngineArgs.",
        "source": f"{wheel.name} (sha256 {hashlib.sha256(wheel.read_bytes()).hexdigest()}), {LLM} and {ENGINE_ARGS}",
        "command": f"python scripts/vllm_engine_args.py {wheel.name}",
        "llm_parameters": llm_parameters(llm),
        "engine_args": dataclass_fields(engine),
    }


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheel", type=Path, help="a vLLM wheel (pip download vllm==VERSION --no-deps)")
    parser.add_argument("--out", type=Path, default=FIXTURE)
    args = parser.parse_args(argv)
    parse_only_exit("vllm_engine_args.py")
    record = read_wheel(args.wheel)
    atomic_write_json(args.out, record)
    print(f"wrote {args.out}: {len(record['llm_parameters'])} LLM parameters, {len(record['engine_args'])} fields")


if __name__ == "__main__":
    run_main(main)
