"""Submit and follow jobs through an `HfApi`: check the token and account in seconds, ship the tree once, submit,
stream or wait, and continue a training job its timeout killed from the checkpoint it pushed."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fine_tune import hub_access as hub
from fine_tune.constants import EXIT_JOB_FAILED, HUB_CHECKPOINT_DIR, TOKEN_ENV, TRAINER_STATE_FILE
from fine_tune.hub.jobs.estimate import format_duration
from fine_tune.hub.jobs.job_spec import TOKEN_SECRET, JobSpec
from fine_tune.hub.jobs.shipping import CODE_BUCKET, CODE_MOUNT_PATH, PROJECT_NAME, ShippedTree
from fine_tune.hub.phases import PHASES, JobsError
from fine_tune.hub_access import hf_token

WAIT_POLL_S = 30.0
WAIT_SLACK_S = 1800.0  # beyond the job's own timeout, before waiting gives up
TIMEOUT_RUN_FRACTION = 0.98
RATE_LIMIT_RETRIES = 3  # a job submission answered 429 is sent again after Retry-After, at most this many times
MAX_RETRY_AFTER_S = 120.0  # a job that failed after running this share of its timeout was killed by it


def preflight(token_env: str = TOKEN_ENV, timeout: float = hub.HUB_TIMEOUT_S) -> str:
    """The token, after checking (in seconds, before anything else) that there is one and the Hub is reachable;
    from here on every huggingface_hub call is bounded."""
    token = hf_token(token_env)
    if token is None:
        raise JobsError(
            f"no Hub token: ${token_env} is not set. Create a token with write access at "
            f"https://huggingface.co/settings/tokens and `export {token_env}=hf_...` (or name another variable with "
            "--token-env). --dry-run needs no token."
        )
    if hub.offline_mode():
        raise JobsError(
            f"offline mode is set ({'/'.join(hub.OFFLINE_ENV_VARS)}): unset it to submit jobs; --dry-run works offline"
        )
    endpoint = hub.hub_endpoint()
    if not hub.hub_reachable(endpoint, timeout=timeout):
        raise JobsError(
            f"the Hugging Face Hub ({endpoint}) is unreachable (no connection and HTTP answer within {timeout:.0f} "
            "s): check the network, proxy (HTTPS_PROXY) or HF_ENDPOINT and retry; --dry-run works offline"
        )
    hub.bound_hub_calls()
    return token


def check_account(api, token: str, namespace: str | None, token_env: str = TOKEN_ENV) -> str:
    """The namespace to run in (whoami when not given); refuses a rejected or read-only token."""
    from huggingface_hub.errors import HfHubHTTPError

    fix = f"create a token with write access at https://huggingface.co/settings/tokens and `export {token_env}=hf_...`"
    hint = "" if namespace else ", or pass --namespace"
    try:
        info = api.whoami(token=token)
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status in (401, 403):
            raise JobsError(f"the Hub rejected the token in ${token_env} ({status}): {fix}") from None
        first_line = hub.redact(str(error).splitlines()[0] if str(error) else type(error).__name__, token)
        raise JobsError(
            f"the Hub could not say who the token belongs to ({first_line}): check HF_ENDPOINT and the network{hint}"
        ) from None
    except (OSError, *http_errors()) as error:  # a silent endpoint: the bounded client's timeout
        raise JobsError(
            f"the Hub ({hub.hub_endpoint()}) did not answer who the token belongs to "
            f"({type(error).__name__}: {hub.redact(str(error), token) or 'no answer'}): check HF_ENDPOINT, the proxy "
            f"and the network{hint}"
        ) from None
    role = ((info.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise JobsError(f"the token in ${token_env} is read-only, but jobs push code and models to the Hub: {fix}")
    return namespace or info["name"]


def first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def retry_after_s(error) -> float | None:
    """The seconds a 429 answer asks to wait (Retry-After, capped at MAX_RETRY_AFTER_S); None for any other error."""
    response = getattr(error, "response", None)
    if getattr(response, "status_code", None) != 429:
        return None
    try:
        return min(float(response.headers.get("Retry-After", 1)), MAX_RETRY_AFTER_S)
    except ValueError:
        return 1.0


def http_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's errors (timeouts, refused or dropped connections): huggingface_hub's transport."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    return (httpx2.HTTPError, HfHubHTTPError)


class Submitter:
    """Ships the tree, submits specs and follows jobs through an `HfApi` (intercepted in tests)."""

    def __init__(self, api, token: str, out: Callable[[str], None] = print):
        self.api = api
        self.token = token
        self.out = lambda text: out(hub.redact(text, token))
        self._volumes: dict[tuple[str, str], Any] = {}

    def ship(self, shipped: ShippedTree, namespace: str):
        key = (namespace, shipped.folder)
        if key not in self._volumes:
            with tempfile.TemporaryDirectory(prefix="medmcqa-ft-ship-") as tmp:
                staged = shipped.stage(Path(tmp) / PROJECT_NAME)
                self.out(f"shipping {len(shipped.files)} files to {namespace}/{CODE_BUCKET}/{shipped.folder}")
                self._volumes[key] = self.api.sync_job_volume(
                    staged,
                    CODE_MOUNT_PATH,
                    remote_name=shipped.folder,
                    read_only=True,
                    namespace=namespace,
                    token=self.token,
                )
        return self._volumes[key]

    def submit(self, spec: JobSpec):
        volume = self.ship(spec.shipped, spec.namespace)
        job = self.run_job(spec, volume)
        self.out(
            f"{spec.phase}: job {job.id} submitted on {spec.flavor} (timeout {format_duration(spec.timeout_seconds)})"
            f"\n  {job.url}\n  logs: hf jobs logs -f {spec.namespace}/{job.id}"
        )
        if spec.trackio_space_id:
            self.out(f"  curves: https://huggingface.co/spaces/{spec.trackio_space_id}")
        return job

    def run_job(self, spec: JobSpec, volume):
        """POST the job. A 429 is retried after the server's Retry-After (at most RATE_LIMIT_RETRIES times); any other
        failure is one line saying whether the job may exist (no answer: check before submitting again)."""
        from huggingface_hub.errors import HfHubHTTPError

        kwargs = spec.run_job_kwargs({TOKEN_SECRET: self.token}, [volume])
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                return self.api.run_job(**kwargs, token=self.token)
            except HfHubHTTPError as error:
                wait = retry_after_s(error)
                if wait is None or attempt == RATE_LIMIT_RETRIES:
                    raise JobsError(
                        f"{spec.phase}: the Hub refused the job ({hub.redact(first_line(error), self.token)}); "
                        "nothing was submitted: retry later"
                    ) from None
                self.out(f"{spec.phase}: rate limited by the Hub; submitting again in {wait:.0f} s (its Retry-After)")
                time.sleep(wait)
            except http_errors() as error:
                raise JobsError(
                    f"{spec.phase}: no answer from the Hub to the job submission ({type(error).__name__}: "
                    f"{hub.redact(first_line(error), self.token)}); the job may have started: check `hf jobs ps "
                    f"--namespace {spec.namespace}` before submitting again"
                ) from None
        raise AssertionError("unreachable")

    def follow(self, job, spec: JobSpec):
        """Stream the logs until the stream ends, then wait for the final stage (a stream can end early, or fail:
        the job runs on either way, so its end is then polled)."""
        try:
            for line in self.api.fetch_job_logs(
                job_id=job.id, namespace=spec.namespace, follow=True, token=self.token
            ):
                self.out(line)
        except http_errors() as error:
            self.out(
                f"{spec.phase}: the log stream of job {job.id} failed ({type(error).__name__}: "
                f"{hub.redact(first_line(error), self.token)}); waiting for the job's end (logs: hf jobs logs "
                f"{spec.namespace}/{job.id})"
            )
        return self.wait(job, spec, announce=False)

    def wait(self, job, spec: JobSpec, announce: bool = True):
        if announce:
            self.out(f"{spec.phase}: waiting for job {job.id} (polling every {WAIT_POLL_S:.0f} s)")
        limit = spec.timeout_seconds + WAIT_SLACK_S
        try:
            return self.api.wait_for_job(
                job.id, timeout=limit, poll_interval=WAIT_POLL_S, namespace=spec.namespace, token=self.token
            )
        except TimeoutError:
            raise JobsError(
                f"{spec.phase} job {job.id} has not ended {format_duration(limit)} after submission (its timeout is "
                f"{format_duration(spec.timeout_seconds)}): see `hf jobs inspect {spec.namespace}/{job.id}`; later "
                "phases were not started"
            ) from None

    def pushed_checkpoint(self, spec: JobSpec) -> bool:
        """Whether the run pushed a complete last-checkpoint/ (its trainer_state.json is written last)."""
        return bool(
            self.api.file_exists(
                spec.hub_model_id, f"{HUB_CHECKPOINT_DIR}/{TRAINER_STATE_FILE}", repo_type="model", token=self.token
            )
        )


def stage_of(job) -> str:
    stage = job.status.stage
    return getattr(stage, "value", str(stage))


def killed_by_timeout(job, spec: JobSpec) -> bool:
    """A job that ended unsuccessfully saying so, or after running (nearly) its whole timeout."""
    if stage_of(job) == "COMPLETED":
        return False
    message = str(getattr(job.status, "message", None) or "").lower()
    if "timeout" in message or "timed out" in message:
        return True
    durations = getattr(job, "durations", None)
    running = getattr(durations, "running_secs", None)
    if running is None and getattr(job, "started_at", None) and getattr(job, "finished_at", None):
        running = (job.finished_at - job.started_at).total_seconds()
    return running is not None and running >= TIMEOUT_RUN_FRACTION * spec.timeout_seconds


def failure_message(spec: JobSpec, job, later: list[str]) -> str:
    status = job.status
    detail = f": {status.message}" if getattr(status, "message", None) else ""
    text = (
        f"{spec.phase} job {job.id} ended {stage_of(job)}{detail}.\n  logs: hf jobs logs {spec.namespace}/{job.id}"
        f"\n  {job.url}"
    )
    if later:
        text += f"\n  not started: {', '.join(later)}. Fix the cause, then rerun with --start-at {spec.phase}"
        if PHASES[spec.phase].trains:
            text += " (add --resume to continue from its last pushed checkpoint)"
    return text


def run_to_end(spec: JobSpec, submitter: Submitter, *, follow: bool, max_resumes: int):
    """Submit `spec` and wait for its final state; a training job killed by its timeout is resubmitted with
    `--resume_from_checkpoint latest` (at most `max_resumes` times) as long as it pushed a checkpoint to go on from."""
    resumes = 0
    while True:
        job = submitter.submit(spec)
        final = submitter.follow(job, spec) if follow else submitter.wait(job, spec)
        if not (PHASES[spec.phase].trains and spec.hub_model_id and killed_by_timeout(final, spec)):
            return spec, final
        stopped = f"{spec.phase}: job {final.id} was killed by its timeout ({format_duration(spec.timeout_seconds)})"
        if resumes >= max_resumes:
            submitter.out(f"{stopped}; it was resubmitted {resumes} time(s), the most allowed (--max-resumes)")
            return spec, final
        if not submitter.pushed_checkpoint(spec):
            submitter.out(f"{stopped} before pushing a checkpoint to {spec.hub_model_id}: not resubmitted")
            return spec, final
        resumes += 1
        submitter.out(
            f"{stopped}; resubmitting it with --resume_from_checkpoint latest from {spec.hub_model_id}/"
            f"{HUB_CHECKPOINT_DIR} (resume {resumes} of at most {max_resumes})"
        )
        spec = spec.resumed()


def run_specs(specs: list[JobSpec], submitter: Submitter, *, follow: bool, wait: bool, max_resumes: int = 0) -> int:
    """Submit each spec in turn; with several (the pipeline) wait for each and stop at the first failure."""
    for index, spec in enumerate(specs):
        if not (follow or wait):
            submitter.submit(spec)
            continue
        spec, final = run_to_end(spec, submitter, follow=follow, max_resumes=max_resumes)
        if stage_of(final) != "COMPLETED":
            submitter.out("error: " + failure_message(spec, final, [s.phase for s in specs[index + 1 :]]))
            return EXIT_JOB_FAILED
        pushed = f": {spec.hub_model_id}" if spec.hub_model_id else ""
        submitter.out(f"{spec.phase}: job {final.id} completed{pushed}")
    return 0
