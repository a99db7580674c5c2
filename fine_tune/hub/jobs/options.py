"""What the submit_job CLI decides for every phase of a run, and its defaults (torch- and TRL-free: `--help`)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_IMAGE = "pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime"  # torch must satisfy pyproject's torch>=2.13
DEFAULT_FLAVOR = "t4-small"
DEFAULT_REPO_PREFIX = "medmcqa"
DEFAULT_TRACKIO_SPACE = "medmcqa-trackio"
DEFAULT_MAX_RESUMES = 2


@dataclass
class Options:
    """What the submit_job CLI decides for every phase."""

    namespace: str
    flavor: str | None = None  # None: the cheapest flavor whose GPU fits the memory plan (else DEFAULT_FLAVOR)
    timeout: str | None = None
    image: str = DEFAULT_IMAGE
    repo_prefix: str = DEFAULT_REPO_PREFIX
    trackio_space: str | None = None  # None: NAMESPACE/medmcqa-trackio
    private: bool = True
    resume: bool = False
    vllm_server: bool = False  # GRPO on a multi-GPU flavor: TRL's vLLM server on one GPU, training on the others
    max_resumes: int = DEFAULT_MAX_RESUMES  # resubmissions of a training job killed by its timeout
    fit: bool = False  # a --flavor too small for the recipe's batch: apply the micro-batch x accumulation that fits

    def hub_id(self, phase: str) -> str:
        return f"{self.namespace}/{self.repo_prefix}-{phase}"

    @property
    def results_repo(self) -> str:
        return f"{self.namespace}/{self.repo_prefix}-eval-results"

    @property
    def trackio_space_id(self) -> str:
        space = self.trackio_space or DEFAULT_TRACKIO_SPACE
        return space if "/" in space else f"{self.namespace}/{space}"
