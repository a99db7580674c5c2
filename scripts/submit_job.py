"""Run a phase, or the whole SFT -> GRPO -> eval pipeline, on Hugging Face Jobs.

python scripts/submit_job.py {sft,grpo,eval,pipeline} --config CONFIG [--flavor t4-small] [--timeout 2h]
    [--namespace USER] [--dry-run] [--follow] [--resume] [overrides...]

`--dry-run` prints the exact job specification as JSON and touches no network. Guide: docs/jobs.md.
"""

from fine_tune.cli import run_main
from fine_tune.hub.jobs.submit_cli import main

if __name__ == "__main__":
    run_main(main)
