"""Contamination and split lineage: eval rows found in a training split are refused (or dropped, if asked), and
each fine-tuned model's training split is verified against the eval rows or flagged as unverified."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fine_tune import hub_access as hub
from fine_tune.constants import SPLIT_MANIFEST_FILE
from fine_tune.data.normalise import content_hash
from fine_tune.data.rows import row_label
from fine_tune.data.splits import manifest_hash, read_manifest, splits_hash
from fine_tune.errors import DatasetError, ModelSourceError
from fine_tune.evaluate.eval_set import EvalSet
from fine_tune.evaluate.scored_models import resolve_source
from fine_tune.hub_access import is_local
from fine_tune.recipes.arguments import EvalConfig

TRAINING_SPLITS = ("sft", "grpo")

# per-model split-check verdicts
VERIFIED = "verified"
NOT_FINE_TUNED = "no training split (no lineage split_manifest_hash)"
UNVERIFIED = "unverified"


@dataclass
class ManifestSource:
    origin: str  # "config" or "lineage of <label>"
    path: str
    manifest: dict[str, Any]


def discover_manifests(
    config: EvalConfig, lineages: Mapping[str, dict[str, Any] | None]
) -> tuple[list[ManifestSource], list[str]]:
    """The configured manifest plus, for local trained models, OUTPUT/split_manifest.json when its hash matches."""
    sources, warnings = [], []
    if config.split_manifest:
        sources.append(ManifestSource("config", config.split_manifest, read_manifest(config.split_manifest)))
    for label, model_source in config.models.items():
        expected = (lineages.get(label) or {}).get("split_manifest_hash")
        source = resolve_source(model_source)
        if not expected or not is_local(source):
            continue
        candidate = Path(source).expanduser().parent / SPLIT_MANIFEST_FILE
        if not candidate.is_file() or any(Path(s.path) == candidate for s in sources):
            continue
        manifest = read_manifest(candidate)
        if manifest_hash(manifest) == expected:
            sources.append(ManifestSource(f"lineage of {label}", str(candidate), manifest))
        else:
            warnings.append(f"{candidate} does not match the split_manifest_hash in {label}'s lineage: not used")
    return sources, warnings


def training_overlap(eval_hashes: Sequence[str], manifest: Mapping[str, Any]) -> dict[str, list[int]]:
    """Indices of eval rows whose content is in each training split (sft, grpo) of `manifest`."""
    overlap = {}
    for name in TRAINING_SPLITS:
        split = manifest.get("splits", {}).get(name)
        if split is None:
            continue
        train = set(split["content_hashes"])
        overlap[name] = [index for index, digest in enumerate(eval_hashes) if digest in train]
    return overlap


def check_split(
    config: EvalConfig, eval_set: EvalSet, lineages: Mapping[str, dict[str, Any] | None]
) -> tuple[EvalSet, dict[str, Any], list[str]]:
    """Refuse (or drop, if asked) eval rows that a training split holds; judge each model's split lineage.

    Returns the eval set (smaller only with drop_contaminated), the "split_check" results section and warnings.
    """
    sources, warnings = discover_manifests(config, lineages)
    eval_hashes = [content_hash(row) for row in eval_set.rows]
    checked, contaminated = [], set()
    for source in sources:
        overlap = training_overlap(eval_hashes, source.manifest)
        bad = {index for indices in overlap.values() for index in indices}
        contaminated |= bad
        checked.append(
            {
                "origin": source.origin,
                "path": source.path,
                "hash": manifest_hash(source.manifest),
                "splits_hash": splits_hash(source.manifest),
                "overlap": {name: len(indices) for name, indices in overlap.items()},
                "overlap_total": len(bad),
            }
        )
    if contaminated:
        eval_set, warning = handle_contamination(config, eval_set, contaminated, checked)
        warnings.append(warning)
    recomputed = manifest_hash(eval_set.manifest) if eval_set.manifest is not None else None
    warnings += manifest_hash_warnings(eval_set.manifest and splits_hash(eval_set.manifest), checked)
    verdicts, verdict_warnings = model_split_verdicts(lineages, recomputed, checked)
    section = {
        "manifest_hash": recomputed,
        "manifests_checked": checked,
        "contaminated_rows_dropped": len(contaminated),
        "models": verdicts,
    }
    return eval_set, section, warnings + verdict_warnings


def handle_contamination(
    config: EvalConfig, eval_set: EvalSet, contaminated: set[int], checked: list[dict[str, Any]]
) -> tuple[EvalSet, str]:
    where = "; ".join(f"{c['path']}: {c['overlap']}" for c in checked if c["overlap_total"])
    examples = ", ".join(row_label(eval_set.rows[i], i) for i in sorted(contaminated)[:5])
    message = (
        f"{len(contaminated)} of {len(eval_set.rows)} eval rows appear in a training split ({where}; e.g. {examples})"
    )
    if not config.drop_contaminated:
        raise DatasetError(
            f"{message}: scores on them would measure memorisation. Evaluate on rows the models never trained on "
            "(same dataset, split_seed and sizes as training), or set drop_contaminated: true to drop them."
        )
    keep = [i for i in range(len(eval_set.rows)) if i not in contaminated]
    return eval_set.select(keep, in_training_split=len(contaminated)), f"{message}: dropped (drop_contaminated)"


def manifest_hash_warnings(recomputed: str | None, checked: list[dict[str, Any]]) -> list[str]:
    """`recomputed`: the splits hash of the split computed here, compared with the configured manifest's splits (a
    training run's manifest also records its dev slice, which does not change the splits)."""
    configured = next((c for c in checked if c["origin"] == "config"), None)
    if recomputed is None or configured is None or configured["splits_hash"] == recomputed:
        return []
    return [
        f"the split recomputed here ({recomputed[:12]}) differs from {configured['path']} "
        f"({configured['splits_hash'][:12]}):"
        " dataset, split_seed or sizes differ from that training run, so this EVAL split is not the one it held out "
        "(its rows were still checked against that run's sft/grpo splits)"
    ]


def model_split_verdicts(
    lineages: Mapping[str, dict[str, Any] | None], recomputed: str | None, checked: list[dict[str, Any]]
) -> tuple[dict[str, str], list[str]]:
    """verified: the split the model trained on was checked here; unverified: it could not be (warned)."""
    known = (
        {c["hash"] for c in checked} | {c["splits_hash"] for c in checked} | ({recomputed} if recomputed else set())
    )
    verdicts, warnings = {}, []
    for label, lineage in lineages.items():
        trained_on = (lineage or {}).get("split_manifest_hash")
        if not trained_on:
            verdicts[label] = NOT_FINE_TUNED
        elif trained_on in known:
            verdicts[label] = VERIFIED
        else:
            verdicts[label] = UNVERIFIED
            warnings.append(
                f"{label} was trained on split manifest {trained_on[:12]}, which was not available to check against "
                "the eval rows: pass that run's split_manifest.json as split_manifest to verify there is no overlap"
            )
    return verdicts, warnings


def fetch_split_manifest(repo_id: str, local_dir: str | Path, token: str | None = None) -> Path:
    """The split_manifest.json a training job pushed to `repo_id`, downloaded to `local_dir`; a Hub or network
    failure is one line (ModelSourceError) once huggingface_hub's own retries are spent."""
    import httpx2
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    hub.bound_hub_calls()
    hub.require_hub(repo_id, "model", file=SPLIT_MANIFEST_FILE)
    token = token or hub.hf_token()
    try:
        return Path(hf_hub_download(repo_id, SPLIT_MANIFEST_FILE, local_dir=local_dir, token=token))
    except (OSError, HfHubHTTPError, httpx2.HTTPError) as error:
        detail = hub.redact(str(error).splitlines()[0] if str(error) else "no answer", token)
        raise ModelSourceError(
            f"cannot download {repo_id}/{SPLIT_MANIFEST_FILE} from the Hub ({type(error).__name__}: {detail}): the "
            "eval rows cannot be checked against the rows the model trained on; run the job again"
        ) from None
