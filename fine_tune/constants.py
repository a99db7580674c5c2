"""One home for file names, Hub IDs, defaults and exit codes that several modules share."""

from pathlib import Path

MEDMCQA_HUB_ID = "openlifescienceai/medmcqa"
SPLIT_NAMES = ("sft", "grpo", "eval")
TRAINING_PHASES = ("sft", "grpo")  # the phases that hand a model on
# the entry script of each phase, relative to the project root
PHASE_SCRIPTS = {
    "sft": "scripts/train_medmcqa_sft.py",
    "grpo": "scripts/train_medmcqa_grpo.py",
    "eval": "scripts/eval_medmcqa.py",
}
DEFAULT_SPLIT_SIZES = {"sft": 1000, "grpo": 500, "eval": 200}
DEFAULT_SPLIT_SEED = 42
BENCHMARK_DIR = "eval_results/benchmarks"  # GPU/CPU benchmark results, under the project root
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
TRACKIO_PROJECT = "medmcqa-classifier"
TOKEN_ENV = "HF_TOKEN"
EXIT_MODEL_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NO_LEARNING_SIGNAL = 3
EXIT_JOB_FAILED = 4
EXIT_REGRESSION = 5  # eval with fail_on_regression: a model is significantly worse than its lineage parent
DEFAULT_MODELS = {"base": "Qwen/Qwen3-0.6B"}
RESUME_LATEST = ("true", "latest", "last")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
LINEAGE_FILE = "lineage.json"
SPLIT_MANIFEST_FILE = "split_manifest.json"
ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"
ADAPTER_CONFIG_FILE = "adapter_config.json"
MODEL_CARD_FILE = "README.md"
RESULTS_FILE = "eval_results.json"
PREDICTIONS_FILE = "predictions.jsonl"
REPORT_FILE = "report.md"
TRAINER_STATE_FILE = "trainer_state.json"
HUB_CHECKPOINT_DIR = "last-checkpoint"
# Eval generation backends: transformers generate, vLLM, or vLLM where it can run (fine_tune/evaluate/vllm_backend.py).
GENERATION_BACKENDS = ("hf", "vllm", "auto")
AUTO_BATCH_SIZE = "auto"  # eval batch_size: sized from free GPU memory
STRATIFY_COLUMNS = ("subject", "answer")  # canonical row columns a split can be stratified by
