# `make demo`: the whole pipeline offline on a tiny model (CPU, a few minutes). `make test`: lint + the test suite.
PY := .venv/bin/python
DEMO := demo_artifacts

.PHONY: setup test lint demo benchmark clean mutation

setup:
	@bash scripts/bootstrap.sh

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	.venv/bin/lint-imports

test: lint
	$(PY) -m pytest -q

# The demo is offline: the Hub switched off for every phase (docs/faults.md, "Offline means offline").
demo: export HF_HUB_OFFLINE = 1
demo: setup
	$(PY) scripts/make_tiny_model.py --out $(DEMO)/tiny-model
	$(PY) -m fine_tune.data.synthetic --out $(DEMO)/synthetic.jsonl --n 3000 --seed 0
	$(PY) scripts/train_medmcqa_sft.py --config configs/demo/sft.yaml
	$(PY) scripts/train_medmcqa_grpo.py --config configs/demo/grpo.yaml
	$(PY) scripts/eval_medmcqa.py --config configs/demo/eval.yaml

benchmark: setup
	$(PY) scripts/benchmark.py --quick

clean:
	rm -rf $(DEMO) outputs

# Mutation testing of the core (docs/mutation.md): out of CI, about 50 minutes on 2 busy cores. One module:
# make mutation MODULES=fine_tune.task.scoring
MODULES ?=
mutation: setup
	$(PY) -c "import mutmut" 2>/dev/null || $(PY) -m pip install --quiet -e ".[mutation]"
	$(PY) scripts/mutation.py $(MODULES)
