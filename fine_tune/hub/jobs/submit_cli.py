"""scripts/submit_job.py: run a phase, or the whole SFT -> GRPO -> eval pipeline, on Hugging Face Jobs.

Imports stay light (`--help` answers in well under 2 s): the recipe loader, and with it TRL's trainer configs, is
imported only when a specification is built."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable
from typing import Any

from fine_tune import hub_access as hub
from fine_tune.cli import OneLineArgumentParser, parse_only, parse_only_exit
from fine_tune.constants import EXIT_BAD_INPUT, TOKEN_ENV
from fine_tune.errors import PipelineError
from fine_tune.hub.jobs import options
from fine_tune.hub.phases import PHASES, PIPELINE

NAMESPACE_ENV = "HF_JOBS_NAMESPACE"
USAGE_EXAMPLES = """examples:
  python scripts/submit_job.py sft --config configs/sft.yaml --namespace USER --dry-run
  python scripts/submit_job.py sft --config configs/sft.yaml --namespace USER --follow --max_steps 200
  python scripts/submit_job.py grpo --config configs/grpo.yaml --namespace USER --flavor a10g-small
  python scripts/submit_job.py grpo --namespace USER --flavor a10g-largex4 --vllm-server --timeout 4h
  python scripts/submit_job.py pipeline --namespace USER --sft-args "--max_steps 400"
  python scripts/submit_job.py sft --config configs/sft.yaml --namespace USER --resume   # continue a killed run
"""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="submit_job.py",
        description=(
            "Run a phase (or the whole SFT -> GRPO -> eval pipeline) on Hugging Face Jobs. Anything after the known "
            "options is passed to the entry script as config overrides (--key value), as when run locally."
        ),
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("phase", choices=[*PHASES, "pipeline"])
    parser.add_argument("--config", help="recipe for a single phase (default configs/<phase>.yaml)")
    parser.add_argument(
        "--flavor",
        help="hardware; default: the cheapest flavor whose GPU fits the phase's planned peak memory "
        f"({options.DEFAULT_FLAVOR} when the model's shape is unknown offline); a flavor too small is refused",
    )
    parser.add_argument(
        "--fit",
        action="store_true",
        help="when --flavor is too small for the recipe's micro-batch: lower it and raise "
        "gradient_accumulation_steps to keep the effective batch (then cap max_length if needed); logged in the notes",
    )
    parser.add_argument("--timeout", help="e.g. 2h, 90m (default: the estimate + margin; never the 30 min default)")
    parser.add_argument("--namespace", help=f"Hub user or org for jobs and repos (or ${NAMESPACE_ENV})")
    parser.add_argument("--dry-run", action="store_true", help="print the job specification as JSON; no network")
    parser.add_argument(
        "--show_recipe",
        action="store_true",
        help="print each job's resolved recipe (every key, value and origin) as its script will read it; no network",
    )
    parser.add_argument("--follow", action="store_true", help="stream the job's logs until it ends")
    parser.add_argument("--resume", action="store_true", help="resume from the last checkpoint pushed to the Hub")
    parser.add_argument(
        "--max-resumes",
        type=int,
        default=options.DEFAULT_MAX_RESUMES,
        help="when waiting (pipeline, --follow): resubmit a training job killed by its timeout with --resume, at "
        f"most this many times (default {options.DEFAULT_MAX_RESUMES})",
    )
    parser.add_argument(
        "--vllm-server",
        action="store_true",
        help="grpo on a multi-GPU flavor: TRL's vLLM server (trl vllm-serve) on GPU 0, training on the others",
    )
    parser.add_argument("--image", default=options.DEFAULT_IMAGE, help="Docker image (default %(default)s)")
    parser.add_argument(
        "--repo-prefix", default=options.DEFAULT_REPO_PREFIX, help="Hub model IDs are NAMESPACE/PREFIX-PHASE"
    )
    parser.add_argument("--trackio-space", help=f"trackio Space (default NAMESPACE/{options.DEFAULT_TRACKIO_SPACE})")
    parser.add_argument("--public", action="store_true", help="push public repos (default private)")
    parser.add_argument("--token-env", default=TOKEN_ENV, help=f"env var holding the Hub token (default {TOKEN_ENV})")
    group = parser.add_argument_group("pipeline")
    for name in PIPELINE:
        group.add_argument(f"--{name}-config", help=f"{name} recipe (default {PHASES[name].default_config})")
        group.add_argument(f"--{name}-args", default="", help=f'{name} overrides as one string, e.g. "--max_steps 10"')
    group.add_argument("--start-at", choices=PIPELINE, default="sft", help="skip the phases before this one")
    return parser


def parse_cli(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = build_parser()
    args, overrides = parser.parse_known_args(argv)
    options_ = {option for action in parser._actions for option in action.option_strings}
    for token in overrides:  # --dry_run for --dry-run: an option of this script, not a recipe key
        flag = token.partition("=")[0]
        if flag.startswith("--") and flag.replace("_", "-") in options_:
            parser.error(f"unrecognized arguments: {flag}")
    if args.phase == "pipeline":
        if overrides:
            parser.error(
                "pipeline takes per-phase overrides (--sft-args, --grpo-args, --eval-args), "
                f"not {shlex.join(overrides)}"
            )
        if args.config:
            parser.error("pipeline takes --sft-config/--grpo-config/--eval-config, not --config")
    else:
        used = [name for name in PIPELINE if getattr(args, f"{name}_args") or getattr(args, f"{name}_config")]
        if used or args.start_at != "sft":
            parser.error("--<phase>-config/--<phase>-args/--start-at are for the pipeline; pass overrides directly")
    if args.max_resumes < 0:
        parser.error(f"--max-resumes must be >= 0, got {args.max_resumes}")
    return args, overrides


def specs_from_args(args: argparse.Namespace, overrides: list[str], namespace: str):
    from fine_tune.hub.jobs.estimate import benchmark_figures
    from fine_tune.hub.jobs.job_spec import build_pipeline, build_spec
    from fine_tune.hub.jobs.shipping import ShippedTree
    from fine_tune.provenance import git_commit

    run_options = options.Options(
        namespace=namespace,
        flavor=args.flavor,
        timeout=args.timeout,
        image=args.image,
        repo_prefix=args.repo_prefix,
        trackio_space=args.trackio_space,
        private=not args.public,
        resume=args.resume,
        vllm_server=args.vllm_server,
        max_resumes=args.max_resumes,
        fit=args.fit,
    )
    shipped = ShippedTree.from_project()
    benchmarks = benchmark_figures()
    commit = git_commit()
    if args.phase == "pipeline":
        return build_pipeline(
            run_options,
            configs={name: getattr(args, f"{name}_config") for name in PIPELINE},
            overrides={name: shlex.split(getattr(args, f"{name}_args")) for name in PIPELINE},
            start_at=args.start_at,
            shipped=shipped,
            benchmarks=benchmarks,
            commit=commit,
        )
    return [
        build_spec(
            args.phase,
            run_options,
            config=args.config,
            overrides=overrides,
            shipped=shipped,
            benchmarks=benchmarks,
            commit=commit,
        )
    ]


def dry_run_document(specs, phase: str) -> dict[str, Any]:
    if phase != "pipeline":
        return specs[0].to_dict()
    return {
        "pipeline": [spec.to_dict() for spec in specs],
        "handoff": [
            {"from": a.phase, "to": b.phase, "model": a.hub_model_id} for a, b in zip(specs, specs[1:], strict=False)
        ],
        "total_timeout_seconds": sum(spec.timeout_seconds for spec in specs),
    }


def summary_lines(specs) -> list[str]:
    from fine_tune.hub.jobs.estimate import format_duration

    lines = []
    for spec in specs:
        est = spec.estimate
        launch = f", {spec.launch.processes} processes on {spec.launch.gpus} GPUs" if spec.launch.gpus > 1 else ""
        if est is None:
            lines.append(
                f"{spec.phase}: no estimate for {spec.flavor}; timeout {format_duration(spec.timeout_seconds)}{launch}"
            )
            continue
        cost = est.cost_usd(est.total_seconds)
        lines.append(
            f"{spec.phase}: {est.units} {est.unit}s x {est.seconds_per_unit} s ({est.figure_kind}) + setup -> "
            f"~{format_duration(est.total_seconds)} on {spec.flavor}"
            + (f" (~${cost:.2f})" if cost is not None else "")
            + f", timeout {format_duration(spec.timeout_seconds)} ({spec.timeout_source}){launch}"
        )
    return lines


def default_api(token: str):
    """An HfApi on the endpoint preflight checked (HfApi's own default is read once, when huggingface_hub loads)."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.hub_endpoint(), token=token)


def main(argv: list[str] | None = None, api_factory: Callable[[str], Any] = default_api) -> int:
    try:
        args, overrides = parse_cli(argv)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    from fine_tune.hub.jobs.submit import Submitter, check_account, http_errors, preflight, run_specs  # after --help
    from fine_tune.recipes.loader import format_recipe

    token: str | None = None
    try:
        namespace = args.namespace or os.environ.get(NAMESPACE_ENV) or None
        if parse_only() and not (args.dry_run or args.show_recipe):  # the recipe is read in full, nothing sent
            specs_from_args(args, overrides, namespace or "USER")
            parse_only_exit(f"submit_job.py {args.phase}")
        if args.dry_run or args.show_recipe:
            if namespace is None:
                raise PipelineError(
                    f"--dry-run and --show_recipe need --namespace USER (or ${NAMESPACE_ENV}): Hub IDs are built from "
                    "it and neither asks the Hub who you are"
                )
            specs = specs_from_args(args, overrides, namespace)
            if args.show_recipe:
                print("\n\n".join(format_recipe(spec.recipe) for spec in specs))
            else:
                print(json.dumps(dry_run_document(specs, args.phase), indent=2))
            return 0
        specs = specs_from_args(args, overrides, namespace) if namespace else None  # local checks first
        token = preflight(args.token_env)
        api = api_factory(token)
        namespace = check_account(api, token, namespace, args.token_env)
        specs = specs or specs_from_args(args, overrides, namespace)
        for line in summary_lines(specs):
            print(line)
        wait = args.phase == "pipeline"
        return run_specs(specs, Submitter(api, token), follow=args.follow, wait=wait, max_resumes=args.max_resumes)
    except PipelineError as error:
        print(f"error: {hub.redact(str(error), token)}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted: submitted jobs keep running (hf jobs ps; hf jobs cancel JOB_ID)", file=sys.stderr)
        return 130
    except (OSError, *http_errors()) as error:  # network and Hub errors: one explained line, never the token
        first_line = hub.redact(str(error).splitlines()[0] if str(error) else "no answer", token)
        print(
            f"error: the Hub call failed ({type(error).__name__}: {first_line}); check the network, "
            f"the token in ${args.token_env} and the namespace, then retry",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
