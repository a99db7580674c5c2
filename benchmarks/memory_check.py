"""Planned vs measured peak memory of an SFT training step on CPU, through the code paths a QLoRA job runs.

    PYTHONPATH=$PWD python benchmarks/memory_check.py            # every case, ~2-4 min on 2 cores, exit 1 if off
    PYTHONPATH=$PWD python benchmarks/memory_check.py --cases 0 2  # the first and the third

Each case is a random-weight Qwen3 model with the real Qwen3 vocabulary (151,936 rows), saved in bf16 and loaded by
`fine_tune.models.loading.load_model_for_training` (bitsandbytes NF4 with nested quantisation, which bitsandbytes 0.50
runs on CPU, then peft's `prepare_model_for_kbit_training`), wrapped by the project's `SelectingSFTTrainer` with
`get_peft_config` (LoRA r 16 on all seven linears, dropout 0.05), `full_precision_adapters`, bf16 autocast
(`precision: bf16`) and TRL's fused LM head, for two optimizer steps on fixed-length random rows.

How memory is measured (torch's CPU allocator keeps no statistics; tracemalloc does not see torch): every case runs
in a fresh subprocess with `MALLOC_MMAP_THRESHOLD_=4096`, so every tensor over 4 KiB is its own mmap, returned to
the kernel when freed (a small case's LoRA gradients are tens of KiB: the glibc heap would reuse step 1's), and
the resident set follows torch's live tensors. Peaks are the kernel's high-water mark
(VmHWM), reset through /proc/self/clear_refs at each stage boundary, minus the resident set at that boundary. Terms:
- weights, adapters: the bytes of the tensors themselves (parameters, quantisation state, gradients, AdamW state);
- forward: resident growth from the start of step 2 to the final norm's forward (the checkpointed layer inputs, or
  every layer's saved tensors, and the final norm's input and output);
- lm_head: high-water mark from the final norm's forward to its backward (the fused head's forward and backward);
- layers: high-water mark from there to the end of the backward (recompute + backward of the layers, the adapter
  gradients as they appear);
- total: weights + adapters + the high-water mark of the whole step above its start.
The plan is `plan_memory(..., device="cpu")`: off CUDA the fused head scores every position and folds each tile with
torch ops, whose fp32 temporaries it counts, and dropout saves fp32 noise instead of a bool mask.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from fine_tune.hub.jobs.memory import GIB, LINEAR_NAMES, ModelShape, plan_memory

VOCAB = 151936  # Qwen3's config vocab_size
TOLERANCE = 0.20
MIB = 2**20


@dataclass(frozen=True)
class Case:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    batch: int
    length: int
    checkpointing: bool = True
    head_dim: int = 64

    def config(self) -> dict:
        return {
            "model_type": "qwen3",
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": VOCAB,
            "tie_word_embeddings": True,
        }

    def recipe(self) -> dict:
        return {
            "use_peft": True,
            "load_in_4bit": True,
            "use_bnb_nested_quant": True,
            "lora_r": 16,
            "lora_dropout": 0.05,
            "lora_target_modules": list(LINEAR_NAMES),
            "per_device_train_batch_size": self.batch,
            "max_length": self.length,
            "activation_checkpointing": self.checkpointing,
        }

    def label(self) -> str:
        ckpt = "ckpt" if self.checkpointing else "no ckpt"
        return f"h{self.hidden} i{self.intermediate} L{self.layers} {self.batch}x{self.length} {ckpt}"


CASES = (
    Case(256, 768, 4, 4, 2, batch=2, length=128),
    Case(512, 1536, 4, 8, 4, batch=2, length=256),
    Case(384, 1152, 8, 6, 2, batch=4, length=64),
    Case(512, 1536, 2, 8, 8, batch=1, length=512),
    Case(1024, 3072, 4, 16, 8, batch=2, length=192, checkpointing=False),
)


def planned_terms(case: Case) -> dict[str, int]:
    """The plan's terms grouped as the measurement separates them."""
    plan = plan_memory(case.recipe(), case.config(), "sft", precision="bf16", device="cpu", length=case.length)
    terms = {**plan.parts, **plan.off_peak}
    grads = ModelShape.from_config(case.config()).lora_params(16, LINEAR_NAMES) * 4
    # the final norm's fp32 input (in the plan's lm_head term) and output (gone by the backward) exist at the forward
    # hook, so the measurement books them to the forward
    final_norm = case.batch * case.length * case.hidden * 4
    return {
        "weights": terms["weights"],
        "adapters": terms["adapters"],
        "forward": (terms["checkpoints"] if case.checkpointing else terms["layer"]) + 2 * final_norm,
        "lm_head": terms["lm_head"] - 2 * final_norm,
        "layers": (terms["layer"] if case.checkpointing else 0) + terms["backward"] + grads,
        "total": plan.peak_bytes,
    }


# --- the measurement (child process) ---------------------------------------------------------------------------------


def _status(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) * 1024


def _reset_peak() -> int:
    """Reset the kernel's high-water mark to the current resident set; returns the resident set."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _tensor_bytes(tensors) -> int:
    seen, total = set(), 0
    for tensor in tensors:
        if tensor is None or tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        total += tensor.numel() * tensor.element_size()
    return total


def _weight_tensors(model):
    """Frozen parameters, buffers and bitsandbytes' quantisation state (absmax, nested absmax, code)."""
    for parameter in model.parameters():
        if not parameter.requires_grad:
            yield parameter
    yield from model.buffers()
    for module in model.modules():
        state = getattr(getattr(module, "weight", None), "quant_state", None)
        while state is not None:
            yield state.absmax
            yield state.code
            state = getattr(state, "state2", None)


def measure(case: Case) -> dict[str, int]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, Qwen3Config, TrainerCallback
    from trl import ModelConfig, get_peft_config

    from fine_tune.models.loading import full_precision_adapters, load_model_for_training
    from fine_tune.recipes.trainer_configs import MedSFTConfig
    from fine_tune.train.selection import SelectingSFTTrainer

    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="memory-check-"))
    AutoModelForCausalLM.from_config(Qwen3Config(**case.config()), dtype=torch.bfloat16).save_pretrained(work / "m")
    recipe = case.recipe()
    model_args = ModelConfig(
        model_name_or_path=str(work / "m"),
        load_in_4bit=True,
        use_bnb_nested_quant=True,
        bnb_4bit_quant_type="nf4",
        use_peft=True,
        lora_r=recipe["lora_r"],
        lora_alpha=32,
        lora_dropout=recipe["lora_dropout"],
        lora_target_modules=recipe["lora_target_modules"],
    )
    model = load_model_for_training(model_args, torch.bfloat16, activation_checkpointing=case.checkpointing)
    rows = torch.randint(0, VOCAB, (case.batch * 2, case.length)).tolist()
    args = MedSFTConfig(
        output_dir=str(work / "out"),
        per_device_train_batch_size=case.batch,
        gradient_accumulation_steps=1,
        max_steps=2,
        learning_rate=1e-4,
        precision="bf16",
        activation_checkpointing=case.checkpointing,
        max_length=case.length,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = SelectingSFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict({"input_ids": rows}),
        peft_config=get_peft_config(model_args),
    )
    full_precision_adapters(trainer.model)
    marks: dict[str, int] = {}
    norm = trainer.model.get_base_model().model.norm

    def on_norm_forward(module, inputs, output):
        if "start" in marks and "norm_forward" not in marks:
            marks["forward"] = _status("VmRSS") - marks["start"]
            marks["norm_forward"] = _reset_peak()

    def on_norm_backward(module, grad_output):
        if "norm_forward" in marks and "norm_backward" not in marks:
            marks["lm_head"] = _status("VmHWM") - marks["norm_forward"]
            marks["norm_backward"] = _reset_peak()

    class StepMarks(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 1:
                marks["start"] = _reset_peak()
                marks["start_hwm_base"] = marks["start"]

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            if "norm_backward" in marks and "layers" not in marks:
                marks["layers"] = _status("VmHWM") - marks["norm_backward"]

    norm.register_forward_hook(on_norm_forward)
    norm.register_full_backward_pre_hook(on_norm_backward)
    trainer.add_callback(StepMarks())
    whole_step_peak: list[int] = []

    class WholeStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                # the step's high-water mark: the largest of its stages, each above the resident set at its start
                whole_step_peak.append(
                    max(
                        marks["forward"],
                        marks["norm_forward"] - marks["start"] + marks["lm_head"],
                        marks["norm_backward"] - marks["start"] + marks["layers"],
                    )
                )

    trainer.add_callback(WholeStep())
    trainer.train()
    model = trainer.model
    adapter = [p for p in model.parameters() if p.requires_grad]
    optimizer_state = [t for state in trainer.optimizer.state.values() for t in state.values() if t.dim() > 0]
    adapters = _tensor_bytes(adapter) * 2 + _tensor_bytes(optimizer_state)  # weight + its gradient (fp32, same size)
    weights = _tensor_bytes(_weight_tensors(model))
    return {
        "weights": weights,
        "adapters": adapters,
        "forward": marks["forward"],
        "lm_head": marks["lm_head"],
        "layers": marks["layers"],
        "total": weights + adapters - _tensor_bytes(adapter) + whole_step_peak[0],
    }


# --- the report ----------------------------------------------------------------------------------------------------


def run_case(case: Case) -> dict[str, int]:
    env = {
        **os.environ,
        "MALLOC_MMAP_THRESHOLD_": "4096",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_VERBOSITY": "error",
    }
    done = subprocess.run(
        [sys.executable, __file__, "--measure", json.dumps(asdict(case))],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"case {case.label()} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(cases: tuple[Case, ...]) -> int:
    terms = ("weights", "adapters", "forward", "lm_head", "layers", "total")
    print(f"planned / measured MiB per term; total ratio = planned / measured (tolerance +-{TOLERANCE:.0%})")
    print(f"{'case':<34}" + "".join(f"{t:>19}" for t in terms))
    off = []
    for case in cases:
        measured, planned = run_case(case), planned_terms(case)
        cells = "".join(f"{planned[t] / MIB:>10.1f} /{measured[t] / MIB:>7.1f}" for t in terms)
        ratio = planned["total"] / measured["total"]
        print(f"{case.label():<34}{cells}  total ratio {ratio:.2f}", flush=True)
        if abs(ratio - 1) > TOLERANCE:
            off.append(case.label())
    if off:
        print(f"planned total outside +-{TOLERANCE:.0%} of measured for: {', '.join(off)}")
        return 1
    print(f"every planned total within +-{TOLERANCE:.0%} of measured ({len(cases)} cases; GiB = {GIB} bytes)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, nargs="*", help="run these cases (0-based; default all)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # one case, in a fresh process: JSON of Case
    args = parser.parse_args(argv)
    if args.measure:
        import torch

        torch.set_num_threads(1)
        print(json.dumps(measure(Case(**json.loads(args.measure)))))
        return 0
    return report(tuple(CASES[index] for index in args.cases) if args.cases else CASES)


if __name__ == "__main__":
    sys.exit(main())
