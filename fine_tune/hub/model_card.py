"""Model cards (README.md) for pushed models: what the model is, how it was made, and how it scored.

A card is rendered from what a run saves: `lineage.json` (phase, base, full config, split manifest hash, project
version and commit), the split manifest and, once the eval script has scored the model, a markdown eval table kept
between two markers so that `update_model_card_with_eval` can replace it without touching the rest.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fine_tune import hub_access
from fine_tune.constants import ADAPTER_DIR, LINEAGE_FILE, MERGED_DIR, MODEL_CARD_FILE, SPLIT_MANIFEST_FILE
from fine_tune.hub_access import is_hub_id
from fine_tune.io import atomic_write_text
from fine_tune.markdown import md_table
from fine_tune.models.lineage import model_config, script_config, training_config

logger = logging.getLogger(__name__)

EVAL_START = "<!-- medmcqa-ft:eval:start -->"
EVAL_END = "<!-- medmcqa-ft:eval:end -->"
NO_EVAL_TEXT = (
    "Not evaluated yet. `scripts/eval_medmcqa.py` scores this model on the held-out eval split and, when asked, "
    "writes its table here."
)
PHASE_TITLES = {"sft": "supervised fine-tuning (SFT)", "grpo": "GRPO reinforcement learning"}
TRAINING_KEYS: tuple[str, ...] = (
    "max_steps",
    "num_train_epochs",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "optim",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "num_generations",
    "max_completion_length",
    "temperature",
    "beta",
    "loss_type",
    "reward_weights",
    "precision",
    "bf16",
    "fp16",
    "activation_checkpointing",
    "seed",
)
MODEL_KEYS: tuple[str, ...] = (
    "use_peft",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "lora_modules_to_save",
    "load_in_4bit",
)
SCRIPT_KEYS: tuple[str, ...] = ("reward_funcs",)
_SECRET_KEY = re.compile(r"(^|_)(token|secret|password)$", re.IGNORECASE)


def redact_secrets(obj: Any) -> Any:
    """A copy with every `*_token` / `*_secret` / `*_password` value replaced (names like `hf_token_env` stay)."""
    if isinstance(obj, Mapping):
        return {
            key: ("<redacted>" if _SECRET_KEY.search(str(key)) and value not in (None, "") else redact_secrets(value))
            for key, value in obj.items()
        }
    if isinstance(obj, list):
        return [redact_secrets(item) for item in obj]
    return obj


def hyperparameters(lineage: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters worth a table row, from the run's full config (nothing secret)."""
    training = training_config(lineage)
    model = model_config(lineage)
    script = script_config(lineage)
    out: dict[str, Any] = {}
    for source, keys in ((training, TRAINING_KEYS), (model, MODEL_KEYS), (script, SCRIPT_KEYS)):
        for key in keys:
            if key in source and source[key] not in (None, [], {}):
                out[key] = source[key]
    if model.get("use_peft") is False:
        for key in MODEL_KEYS[1:]:
            out.pop(key, None)
    if isinstance(out.get("max_steps"), int) and out["max_steps"] > 0:
        out.pop("num_train_epochs", None)
    config = lineage.get("config") or {}
    for key in ("global_step", "world_size"):
        if config.get(key) is not None:
            out[key] = config[key]
    return redact_secrets(out)


def dataset_ids(lineage: Mapping[str, Any], manifest: Mapping[str, Any] | None) -> list[str]:
    """The Hub datasets the model trained on: each task's of a mixture, else the manifest's (or recipe's) source."""
    mixture = (manifest or {}).get("mixture")
    sources = (
        [entry["source"] for entry in mixture]
        if mixture
        else [(manifest or {}).get("source") or script_config(lineage).get("dataset_name")]
    )
    return [source for source in sources if is_hub_id(source)]


def front_matter(
    lineage: Mapping[str, Any], manifest: Mapping[str, Any] | None, library_name: str = "transformers"
) -> str:
    from huggingface_hub import ModelCardData

    phase = lineage.get("phase")
    base = lineage.get("base")
    tags = ["medmcqa", "medical", "multiple-choice", "json", "trl", str(phase)]
    if hyperparameters(lineage).get("use_peft"):
        tags += ["peft", "lora"]
    data = ModelCardData(
        base_model=base if is_hub_id(base) else None,
        library_name=library_name,
        pipeline_tag="text-generation",
        datasets=dataset_ids(lineage, manifest) or None,
        tags=tags,
    )
    return data.to_yaml()


def _value(value: Any) -> str:
    """Lists, mappings, booleans and None as JSON (as a recipe writes them); anything else as str()."""
    return json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else str(value)


def _table(rows: list[tuple[str, Any]], header: tuple[str, str]) -> str:
    return md_table(header, [(_value(key), _value(value)) for key, value in rows])


def _model_link(value: Any) -> str:
    return f"[{value}](https://huggingface.co/{value})" if is_hub_id(value) else f"`{value}`"


def manifest_section(lineage: Mapping[str, Any], manifest: Mapping[str, Any] | None) -> str:
    manifest_hash = lineage.get("split_manifest_hash")
    if not manifest:
        return f"Split manifest hash: `{manifest_hash}` (manifest not available)."
    splits = manifest.get("splits") or {}
    mixture = manifest.get("mixture") or []
    sources = [(f"task {e['task']} (weight {e['weight']:g})", f"{e['source']}: {e['sizes']}") for e in mixture]
    rows: list[tuple[str, Any]] = [
        *(sources or [("source", manifest.get("source"))]),
        ("split seed", manifest.get("seed")),
        ("requested sizes", manifest.get("sizes")),
        ("dataset fingerprint", manifest.get("dataset_fingerprint")),
        ("manifest hash", manifest_hash),
    ]
    rows += [(f"{name} rows", split.get("size")) for name, split in splits.items()]
    if manifest.get("skipped"):
        rows.append(("skipped rows", manifest["skipped"]))
    phase_split = {"sft": "sft", "grpo": "grpo"}.get(str(lineage.get("phase")))
    note = (
        f"This model was trained on the `{phase_split}` split only; the splits are disjoint by content hash, so the "
        "`eval` rows are unseen. "
        if phase_split
        else ""
    )
    return (
        f"{note}Every row's index, ID and content hash is in [`{SPLIT_MANIFEST_FILE}`]({SPLIT_MANIFEST_FILE}).\n\n"
        + _table(rows, ("split manifest", "value"))
    )


def lineage_section(lineage: Mapping[str, Any]) -> str:
    rows: list[tuple[str, Any]] = [
        ("phase", lineage.get("phase")),
        ("started from", lineage.get("base")),
        ("project version", lineage.get("project_version")),
        ("project commit", lineage.get("project_commit")),
        ("date", lineage.get("date")),
    ]
    parent = lineage.get("parent")
    if isinstance(parent, Mapping):
        rows.append(("parent phase", f"{parent.get('phase')} from {parent.get('base')}"))
    return (
        f"The full record, including every config value of the run, is in [`{LINEAGE_FILE}`]({LINEAGE_FILE}).\n\n"
        + _table(rows, ("lineage", "value"))
    )


def eval_block(eval_table_md: str | None) -> str:
    body = eval_table_md.strip() if eval_table_md and eval_table_md.strip() else NO_EVAL_TEXT
    return f"{EVAL_START}\n{body}\n{EVAL_END}"


def render_model_card(
    lineage: Mapping[str, Any],
    *,
    manifest: Mapping[str, Any] | None = None,
    repo_id: str | None = None,
    eval_table_md: str | None = None,
    library_name: str = "transformers",
    secret: str | None = None,
) -> str:
    """README.md text: YAML front matter, then base, phase, data and split, hyperparameters, lineage, eval table."""
    phase = str(lineage.get("phase"))
    base = lineage.get("base")
    title = repo_id or f"MedMCQA {phase} model"
    hparams = hyperparameters(lineage)
    usage_id = repo_id or "PATH_TO_THIS_MODEL"
    sections = [
        f"---\n{front_matter(lineage, manifest, library_name)}\n---",
        f"# {title}",
        (
            f"{_model_link(base)} after {PHASE_TITLES.get(phase, phase)} on MedMCQA multiple-choice questions, "
            "trained to answer with exactly one JSON object: `predicted_category` (A-D), `confidence` (0-1) and "
            f"`reason`. The repo root holds the merged model; the LoRA adapter is under `{ADAPTER_DIR}/`."
        ),
        "## Evaluation\n\n" + eval_block(eval_table_md),
        "## Data and split\n\n" + manifest_section(lineage, manifest),
        "## Hyperparameters\n\n" + _table(list(hparams.items()), ("hyperparameter", "value")),
        "## Lineage\n\n" + lineage_section(lineage),
        (
            "## Usage\n\n```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f'model = AutoModelForCausalLM.from_pretrained("{usage_id}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{usage_id}")\n```\n\n'
            "Prompt it with the project's chat prompt (`fine_tune.task.prompts`) and `enable_thinking=False`."
        ),
    ]
    text = "\n\n".join(sections) + "\n"
    return text.replace(secret, "<redacted>") if secret else text


def replace_eval_section(card: str, eval_table_md: str) -> str:
    """The card with its eval block replaced (or added before the first section after the title when absent)."""
    block = eval_block(eval_table_md)
    pattern = re.compile(re.escape(EVAL_START) + r".*?" + re.escape(EVAL_END), re.DOTALL)
    if pattern.search(card):
        return pattern.sub(lambda _: block, card, count=1)
    return card.rstrip("\n") + f"\n\n## Evaluation\n\n{block}\n"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def card_for_output_dir(
    output_dir: str | Path,
    repo_id: str | None = None,
    *,
    eval_table_md: str | None = None,
    secret: str | None = None,
) -> str:
    """The card for what `save_adapter_and_merged` wrote under `output_dir` (merged/ lineage, split manifest)."""
    output_dir = Path(output_dir)
    lineage = _read_json(output_dir / MERGED_DIR / LINEAGE_FILE) or _read_json(output_dir / LINEAGE_FILE)
    if lineage is None:
        raise FileNotFoundError(f"no {LINEAGE_FILE} under {output_dir / MERGED_DIR}: not a saved training output")
    lineage = _with_parent(lineage)
    manifest = _read_json(output_dir / SPLIT_MANIFEST_FILE)
    return render_model_card(lineage, manifest=manifest, repo_id=repo_id, eval_table_md=eval_table_md, secret=secret)


def _with_parent(lineage: dict[str, Any]) -> dict[str, Any]:
    """Adds the lineage of a local starting model (e.g. GRPO from a local SFT folder), when there is one."""
    base = lineage.get("base")
    if isinstance(base, str) and not lineage.get("parent"):
        parent = _read_json(Path(base).expanduser() / LINEAGE_FILE)
        if parent is not None:
            return {**lineage, "parent": {k: parent.get(k) for k in ("phase", "base", "split_manifest_hash")}}
    return lineage


def update_model_card_with_eval(
    repo_id_or_path: str | Path,
    eval_table_md: str,
    token: str | None = None,
    *,
    commit_message: str = "Model card: eval results",
) -> str:
    """Write `eval_table_md` into the eval section of a model's card, locally or on the Hub; returns where.

    A local folder's README.md is rewritten in place (rendered from its lineage.json first when it has none). A Hub
    repo's README.md is downloaded, updated and uploaded in one commit (rendered from its lineage.json when absent).
    """
    path = Path(repo_id_or_path).expanduser()
    if path.is_dir():
        card_path = path / MODEL_CARD_FILE
        if card_path.is_file() and EVAL_START in card_path.read_text():
            card = card_path.read_text()
        else:
            lineage = _read_json(path / LINEAGE_FILE)
            if lineage is None:
                card = card_path.read_text() if card_path.is_file() else f"# {path.name}\n"
            else:
                manifest = _read_json(path / SPLIT_MANIFEST_FILE) or _read_json(path.parent / SPLIT_MANIFEST_FILE)
                card = render_model_card(_with_parent(lineage), manifest=manifest)
        atomic_write_text(card_path, replace_eval_section(card, eval_table_md))
        return str(card_path)
    return _update_hub_card(str(repo_id_or_path), eval_table_md, token, commit_message)


def eval_table_from_results(results: Mapping[str, Any], label: str | None = None) -> str:
    """The eval section for a card, from an eval run's results (`eval_results.json`): every model of the run, so
    the card compares this model (`label`) with the others scored on the same rows."""
    from fine_tune.evaluate import report
    from fine_tune.evaluate.mixture_results import summary_section

    if "mixture" in results:  # several tasks: the summary table, each task a column
        tasks = ", ".join(f"{e['task']} ({e['rows']} questions)" for e in results["mixture"])
        intro = f"Eval run `{results.get('run_name')}` over {len(results['mixture'])} tasks: {tasks}."
        intro += f" This model is **{label}**." if label else ""
        return f"{intro}\n\n{summary_section(results).replace('## ', '### ', 1)}"
    dataset = results.get("dataset") or {}
    intro = (
        f"Eval run `{results.get('run_name')}`: {dataset.get('rows')} questions, {dataset.get('description')} of "
        f"`{dataset.get('source')}`; eval rows hash `{dataset.get('eval_rows_hash')}`."
    )
    if label:
        intro += f" This model is **{label}**."
    table = report.metrics_section(results).replace("## Metrics", "### Metrics", 1)
    return f"{intro}\n\n{table}"


def update_cards_from_results(
    results: Mapping[str, Any], token: str | None = None, *, labels: list[str] | None = None
) -> list[str]:
    """Write an eval run's table into the card of every model it scored successfully (Hub repo or local folder,
    never the base model's repo unless it is listed in `labels`). Returns where each card was written."""
    written = []
    for label, model in (results.get("models") or {}).items():
        source = model.get("source")
        if model.get("status") != "ok" or not source:
            continue
        if labels is None and label == "base":
            continue
        if labels is not None and label not in labels:
            continue
        try:
            written.append(update_model_card_with_eval(source, eval_table_from_results(results, label), token))
        except (OSError, ValueError) as error:  # e.g. no write access to that repo: the others still get theirs
            logger.warning("could not update the model card of %s (%s): %s", label, source, error)
    return written


def _update_hub_card(repo_id: str, eval_table_md: str, token: str | None, commit_message: str) -> str:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    hub_access.bound_hub_calls()

    def download(filename: str) -> str | None:
        try:
            return Path(hf_hub_download(repo_id, filename, token=token)).read_text()
        except EntryNotFoundError:
            return None

    card = download(MODEL_CARD_FILE)
    if card is None or EVAL_START not in card:
        lineage_text = download(LINEAGE_FILE)
        if lineage_text is not None:
            manifest_text = download(SPLIT_MANIFEST_FILE)
            card = render_model_card(
                json.loads(lineage_text),
                manifest=json.loads(manifest_text) if manifest_text else None,
                repo_id=repo_id,
            )
        elif card is None:
            card = f"# {repo_id}\n"
    updated = replace_eval_section(card, eval_table_md)
    HfApi(endpoint=hub_access.hub_endpoint(), token=token).upload_file(
        path_or_fileobj=updated.encode(),
        path_in_repo=MODEL_CARD_FILE,
        repo_id=repo_id,
        commit_message=commit_message,
    )
    return f"{repo_id}/{MODEL_CARD_FILE}"
