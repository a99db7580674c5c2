"""Re-measure the small figures quoted in docs/measurements.md (each section there names its command).

python scripts/measure_figures.py lengths    # target JSON tokens and missing explanations, real validation rows
python scripts/measure_figures.py kshot      # prompt tokens at 0, 1, 3, 5 shots
python scripts/measure_figures.py bootstrap  # paired bootstrap: ours vs scipy.stats.bootstrap, 4,183 pairs
python scripts/measure_figures.py loader     # read_task_rows on the real validation file and on 10 copies of it
python scripts/measure_figures.py parser     # the lenient parser on 56 KB inputs that used to be quadratic
python scripts/measure_figures.py grpo-path  # the project code read from the GRPO script to trainer.train()

Timings move with the machine's load: read them next to `uptime`. lengths, kshot and loader need ../shared.
"""

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from fine_tune.cli import run_main
from fine_tune.errors import DatasetError

ANSWER = '{"predicted_category": "B", "confidence": 0.9, "reason": "r"}'


def _shared(shared: Path, *parts: str) -> Path:
    path = shared.joinpath(*parts)
    if not path.exists():
        raise DatasetError(f"{path}: not found (this measurement needs ../shared, or pass --shared-dir)")
    return path


def _rows(shared: Path) -> list[dict]:
    """The real validation rows as every phase reads them: canonical, through the task's one data path."""
    from fine_tune.data.normalise import load_task
    from fine_tune.task.spec import resolve_task

    logging.disable(logging.WARNING)
    source = _shared(shared, "data", "medmcqa", "validation.jsonl")
    return list(load_task(resolve_task("medmcqa"), "validation", str(source)).dataset)


def _tokenizer(shared: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(_shared(shared, "tokenizers", "qwen3")))


def lengths(shared: Path) -> None:
    from fine_tune.task.prompts import target_response

    rows, tokenizer = _rows(shared), _tokenizer(shared)
    n = [len(tokenizer(target_response(r))["input_ids"]) for r in rows]
    print(f"target JSON tokens: mean {np.mean(n):.1f}, p95 {np.percentile(n, 95):.0f}, max {max(n)}")
    missing = sum(not (r["exp"] or "").strip() for r in rows)
    print(f"explanation missing: {missing} of {len(rows)} rows ({missing / len(rows):.1%})")


def kshot(shared: Path) -> None:
    from fine_tune.task.prompts import chat_format, prompt_messages, render_prompt, select_exemplars

    tokenizer = _tokenizer(shared)
    rows = _rows(shared)
    scored, pool = rows[:1000], rows[1000:3000]  # exemplars from 2,000 other rows, as the eval draws from SFT rows
    fmt = chat_format(tokenizer)
    for shots in (0, 1, 3, 5):
        exemplars = [pool[i] for i in select_exemplars(len(pool), shots, seed=42)]
        n = [
            len(tokenizer(render_prompt(tokenizer, prompt_messages(r, fmt, exemplars=exemplars)))["input_ids"])
            for r in scored
        ]
        print(f"{shots} shots: prompt tokens mean {np.mean(n):.0f}, p95 {np.percentile(n, 95):.0f}")


def bootstrap(_: Path) -> None:
    from scipy import stats

    from fine_tune.evaluate.stats import paired_bootstrap_diff

    rng = np.random.default_rng(0)
    a, b = rng.random(4183) < 0.6, rng.random(4183) < 0.55
    start = time.perf_counter()
    ours = paired_bootstrap_diff(a, b, n_resamples=10000)
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    ref = stats.bootstrap(
        (a, b),
        lambda x, y, axis: x.mean(axis) - y.mean(axis),
        paired=True,
        vectorized=True,
        n_resamples=10000,
        method="percentile",
        random_state=0,
    )
    t_scipy = time.perf_counter() - start
    ci = ref.confidence_interval
    print(f"ours {t_ours * 1000:.1f} ms, 95% CI [{ours['low']:.4f}, {ours['high']:.4f}]")
    print(f"scipy.stats.bootstrap {t_scipy:.2f} s, 95% CI [{ci.low:.4f}, {ci.high:.4f}]")


def loader(shared: Path) -> None:
    from fine_tune.data.reading import read_task_rows
    from fine_tune.task.spec import resolve_task

    logging.disable(logging.WARNING)
    spec, source = resolve_task("medmcqa"), _shared(shared, "data", "medmcqa", "validation.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        tenfold = Path(tmp) / "validation-x10.jsonl"
        tenfold.write_text(source.read_text() * 10)
        for path in (source, tenfold):
            times = []
            for _ in range(3):
                start = time.perf_counter()
                rows = read_task_rows(spec, "train", str(path))
                times.append(time.perf_counter() - start)
            print(f"{len(rows.dataset)} rows: best of 3 {min(times):.2f} s")


def parser(_: Path) -> None:
    from fine_tune.task.parsing import parse_response_lenient

    inputs = {
        "unclosed <think> x 5600 + answer": "<think> a " * 5600 + ANSWER,
        "'{ ' x 28000": "{ " * 28000,
        '\'{"a": "\' x 8000': '{"a": "' * 8000,
        "closed <think> of 56 KB + answer": "<think>" + "a" * 56000 + "</think>" + ANSWER,
    }
    for name, text in inputs.items():
        start = time.perf_counter()
        parse_response_lenient(text)
        print(f"{name}: {time.perf_counter() - start:.3f} s")


def grpo_path(_: Path) -> None:
    """Every project function that runs from scripts/train_medmcqa_grpo.py to the trainer's `train()` (profiled on a
    tiny run that stops there), with its lines: what a reader follows to see how GRPO is set up."""
    import inspect
    import runpy
    import sys

    from trl import GRPOTrainer

    from fine_tune.constants import PHASE_SCRIPTS, PROJECT_ROOT
    from fine_tune.data.synthetic import generate_rows, write_jsonl
    from fine_tune.models.tiny import build_tiny_model

    class Reached(Exception):
        pass

    def stop(self, *args, **kwargs):
        raise Reached

    called: dict[object, str] = {}

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(str(PROJECT_ROOT / "fine_tune")):
            called.setdefault(frame.f_code, frame.f_code.co_filename)

    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "tiny")
        data = Path(tmp) / "rows.jsonl"
        write_jsonl(generate_rows(120, seed=0), data)
        argv = ["--config", "configs/demo/grpo.yaml", "--model_name_or_path", str(model), "--dataset_name", str(data)]
        argv += ["--sft_size", "40", "--grpo_size", "40", "--eval_size", "20", "--dev_size", "8"]
        argv += ["--require_sft_lineage", "false", "--output_dir", f"{tmp}/out", "--report_to", "none"]
        GRPOTrainer.train = stop
        sys.argv = [PHASE_SCRIPTS["grpo"], *argv]
        sys.setprofile(profile)
        try:
            runpy.run_path(str(PROJECT_ROOT / PHASE_SCRIPTS["grpo"]), run_name="__main__")
        except (Reached, SystemExit):
            pass
        finally:
            sys.setprofile(None)
    script = len((PROJECT_ROOT / PHASE_SCRIPTS["grpo"]).read_text().splitlines())
    per_file: dict[str, int] = {}
    for code, filename in called.items():
        if code.co_name == "<module>":  # module bodies (imports, constants) run once; a reader skims them
            continue
        per_file[filename] = per_file.get(filename, 0) + len(inspect.getsourcelines(code)[0])
    for filename, lines in sorted(per_file.items(), key=lambda item: -item[1]):
        print(f"{lines:5d}  {Path(filename).relative_to(PROJECT_ROOT)}")
    print(f"{script + sum(per_file.values())} lines in {len(per_file) + 1} files (the script's {script} included)")


MEASUREMENTS = {
    "lengths": lengths,
    "kshot": kshot,
    "bootstrap": bootstrap,
    "loader": loader,
    "parser": parser,
    "grpo-path": grpo_path,
}


def main(argv: list[str] | None = None) -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("measurement", choices=sorted(MEASUREMENTS))
    cli.add_argument("--shared-dir", type=Path, default=Path("../shared"), help="../shared (real data, tokenizer)")
    args = cli.parse_args(argv)
    MEASUREMENTS[args.measurement](args.shared_dir)


if __name__ == "__main__":
    run_main(main)
