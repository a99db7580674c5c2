"""Dev scoring without training: the three scorers on fake generation and losses bound to the real signatures (and
the tiny model), and the Trainer's evaluate() replaced by dev scoring."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from dev_records import TEXT_ROWS, TEXT_TASK, mixture_split, selection_logs
from signatures import bound_to
from transformers import EarlyStoppingCallback, Trainer, TrainerControl, TrainerState, TrainingArguments

from fine_tune.data.synthetic import generate_canonical_rows
from fine_tune.evaluate.generation import GenerationResult
from fine_tune.task.spec import parse_task_spec, resolve_task
from fine_tune.train import selection
from fine_tune.train.selection import DevScorer

pytestmark = pytest.mark.usefixtures("single_torch_thread")


class Tokenizer:
    """What dev scoring reads and restores of a tokenizer: its padding side."""

    def __init__(self, padding_side="right"):
        self.padding_side = padding_side


def fake_generation(monkeypatch, texts, calls=None):
    """generate_responses answering `texts`, bound to the real signature; it pads left, as the real one does."""

    def generate(model, tokenizer, messages, *, batch_size=None, max_new_tokens=256, **_):
        if calls is not None:
            training = getattr(model, "training", None)  # the mode the model was scored in
            calls.append({"model": model, "training": training, "messages": messages, "batch_size": batch_size,
                          "tokens": max_new_tokens})  # fmt: skip
        tokenizer.padding_side = "left"
        return GenerationResult(list(texts), [1] * len(texts), [True] * len(texts), 1.0)

    monkeypatch.setattr(selection, "generate_responses", bound_to(selection.generate_responses, generate))


def answer(letter):
    return json.dumps({"predicted_category": letter, "confidence": 0.5, "reason": "r"})


def test_dev_scoring_uses_the_strict_greedy_eval(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = generate_canonical_rows(4, seed=2)
    scorer = DevScorer.from_rows(rows, batch_size=2, max_new_tokens=8)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.padding_side = "right"
    record = scorer.score(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, step=0)
    assert record["n"] == 4 and record["accuracy"] == 0.0 and record["valid_json_rate"] == 0.0
    assert tokenizer.padding_side == "right", "scoring restores the tokenizer's padding side"
    assert scorer.history == [record]


def test_dev_rows_of_a_mixture_are_scored_with_their_own_tasks_letters(monkeypatch):
    split = mixture_split()
    parts = [(part.task, part.splits["sft"]) for part in split.parts]
    scorer = DevScorer.from_parts(parts, batch_size=4, max_new_tokens=8)
    n = len(scorer.golds)
    fake_generation(monkeypatch, [answer("D")] * n)
    record = scorer.score(model=None, tokenizer=Tokenizer("left"), step=0)
    medqa_rows = len(split.parts[0].splits["sft"])
    assert [len(letters) for letters in scorer.letters] == [4] * medqa_rows + [3] * (n - medqa_rows)
    assert record["schema_pass_rate"] == medqa_rows / n, "D is no letter of PubMedQA's A-C"
    medqa_golds = scorer.golds[:medqa_rows]
    assert record["accuracy"] == medqa_golds.count("D") / n
    assert record["per_task"] == {"medqa": medqa_golds.count("D") / medqa_rows, "pubmedqa": 0.0}


def test_dev_answers_restore_the_padding_side_even_when_generation_fails(monkeypatch):
    def fail(model, tokenizer, messages, *, batch_size=None, max_new_tokens=256, **_):
        tokenizer.padding_side = "left"
        raise RuntimeError("out of memory")

    monkeypatch.setattr(selection, "generate_responses", bound_to(selection.generate_responses, fail))
    tokenizer = Tokenizer("right")
    with pytest.raises(RuntimeError, match="out of memory"):
        selection.generate_dev_answers(None, tokenizer, [[]], batch_size=2, max_new_tokens=4)
    assert tokenizer.padding_side == "right"


def test_a_dev_record_counts_correct_valid_and_schema_passing_answers(monkeypatch):
    rows = generate_canonical_rows(4, seed=2)
    scorer = DevScorer.from_rows(rows, batch_size=3, max_new_tokens=7)
    assert scorer.golds == ["A", "D", "D", "A"]
    texts = [answer("A"), answer("A"), "nope", '{"predicted_category": "A"}']
    calls = []
    fake_generation(monkeypatch, texts, calls)
    tokenizer = Tokenizer("right")
    record = scorer.score("model", tokenizer, step=4)
    assert calls == [{"model": "model", "training": None, "messages": scorer.messages, "batch_size": 3, "tokens": 7}]
    assert record == {
        "step": 4,
        "n": 4,
        "accuracy": 0.5,
        "valid_json_rate": 0.75,
        "schema_pass_rate": 0.5,
        "score": pytest.approx(2 / 4 + 2 / 20),
        "examples": texts[:3],
        "correct": [True, False, False, True],
    }, "one task: no per-task accuracy"
    assert scorer.history == [record] and tokenizer.padding_side == "right"
    assert scorer.describe(record) == "dev step 4: accuracy 0.500, valid JSON 0.750, schema pass 0.500"


def test_a_scorer_built_without_letters_scores_with_a_to_d(monkeypatch):
    scorer = DevScorer([[]] * 2, ["D", "C"], 1, 1)
    fake_generation(monkeypatch, [answer("D"), answer("E")])
    record = scorer.score(None, Tokenizer(), step=0)
    assert record["correct"] == [True, False] and record["schema_pass_rate"] == 0.5, "E is no letter of A-D"
    assert scorer.history == [record]


def test_dev_rows_without_a_task_are_prompted_and_scored_as_medmcqa():
    from fine_tune.task.prompts import LETTERS, gold_letter, prompt_messages

    rows = generate_canonical_rows(3, seed=5)
    scorer = DevScorer.from_parts([(None, rows)], batch_size=2, max_new_tokens=9)
    assert type(scorer) is DevScorer and (scorer.batch_size, scorer.max_new_tokens) == (2, 9)
    assert scorer.messages == [prompt_messages(row) for row in rows]
    assert scorer.golds == [gold_letter(row, None) for row in rows]
    assert scorer.letters == [LETTERS] * 3 and scorer.tasks == ["medmcqa"] * 3
    medqa5 = resolve_task("medqa5")
    named = DevScorer.from_rows(rows, batch_size=2, max_new_tokens=9, task=medqa5)
    assert named.letters == [medqa5.letters] * 3 and named.tasks == ["medqa5"] * 3
    assert named.messages == [prompt_messages(row, task=medqa5) for row in rows]
    fifth = {**rows[0], "options": [*rows[0]["options"], "a fifth option"], "answer": 4}
    assert DevScorer.from_rows([fifth], 1, 1, task=medqa5).golds == ["E"], "the gold letter is the task's"


def test_a_generation_that_lost_an_answer_is_refused(monkeypatch):
    for parts in ([(None, generate_canonical_rows(3, seed=5))], [(open_task("json"), OPEN_ROWS[:3])]):
        scorer = DevScorer.from_parts(parts, batch_size=1, max_new_tokens=1)
        fake_generation(monkeypatch, [answer("A")] * 2)
        with pytest.raises(ValueError, match=r"zip\(\) argument 2 is longer"):  # 2 answers for 3 rows
            scorer.score(None, Tokenizer(), step=0)
        assert scorer.history == []


OPEN_TASK = Path(__file__).resolve().parent / "fixtures" / "open" / "specialties.yaml"


OPEN_ROWS = [
    {"id": "a", "question": "Which drug reverses heparin?", "answer": "Protamine sulfate.", "context": None},
    {"id": "b", "question": "What is ascites?", "answer": "Fluid in the peritoneal cavity.", "context": None},
    {"id": "c", "question": "What is oliguria?", "answer": "Low urine output.", "context": None},
    {"id": "d", "question": "What is anuria?", "answer": "No urine output.", "context": None},
]


def open_task(answer_format):
    return parse_task_spec(
        {"name": "notes", "type": "open", "answer_format": answer_format, "dataset_path": "./x.jsonl",
         "fields": {"question": "question", "answer": "answer"}}
    )  # fmt: skip


def test_an_open_tasks_dev_rows_get_the_open_scorer():
    from fine_tune.task.prompts import prompt_messages

    task = resolve_task(str(OPEN_TASK))
    scorer = DevScorer.from_parts([(task, OPEN_ROWS)], batch_size=2, max_new_tokens=9)
    assert type(scorer) is selection.OpenDevScorer and scorer.answer_format == "json"
    assert scorer.messages == [prompt_messages(row, task=task) for row in OPEN_ROWS]
    assert scorer.golds == [row["answer"] for row in OPEN_ROWS]
    assert (scorer.batch_size, scorer.max_new_tokens) == (2, 9)
    assert DevScorer.from_parts([(open_task("text"), OPEN_ROWS)], 1, 1).answer_format == "text"
    message = "task: an open task is trained alone, not in a mixture (medmcqa, specialties)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        DevScorer.from_parts([(None, generate_canonical_rows(2, seed=1)), (task, OPEN_ROWS)], 1, 1)


def test_an_open_dev_record_is_the_mean_rouge_l_with_the_schema_tie_break(monkeypatch):
    scorer = DevScorer.from_parts([(open_task("json"), OPEN_ROWS)], batch_size=2, max_new_tokens=9)
    right = [json.dumps({"answer": row["answer"], "confidence": 0.9}) for row in (OPEN_ROWS[0], OPEN_ROWS[3])]
    texts = [right[0], '{"answer": "Fluid"}', "no JSON", right[1]]
    calls = []
    fake_generation(monkeypatch, texts, calls)
    tokenizer = Tokenizer("right")
    record = scorer.score("model", tokenizer, step=6)
    assert calls == [{"model": "model", "training": None, "messages": scorer.messages, "batch_size": 2, "tokens": 9}]
    assert (
        record
        == {
            "step": 6,
            "n": 4,
            "accuracy": 0.5,  # ROUGE-L 1, 0 (wrong keys: no answer), 0, 1
            "valid_json_rate": 0.75,
            "schema_pass_rate": 0.5,
            "score": pytest.approx(0.5 + 2 / 20),
            "examples": texts[:3],
        }
    )
    assert scorer.history == [record] and tokenizer.padding_side == "right"


def test_a_plain_text_open_answer_is_valid_when_not_empty(monkeypatch):
    scorer = DevScorer.from_parts([(open_task("text"), OPEN_ROWS[:2])], batch_size=1, max_new_tokens=4)
    fake_generation(monkeypatch, ["Protamine sulfate.", "  "])
    record = scorer.score(None, Tokenizer(), step=2)
    assert (record["accuracy"], record["valid_json_rate"], record["schema_pass_rate"]) == (0.5, 0.5, 0.5)
    assert record["score"] == pytest.approx(0.5 + 1 / 6)


def test_a_text_tasks_dev_rows_get_the_perplexity_scorer():
    task = parse_task_spec(TEXT_TASK)
    scorer = DevScorer.from_parts([(task, TEXT_ROWS)], batch_size=3, max_new_tokens=9)
    assert type(scorer) is selection.PerplexityDevScorer
    assert scorer.golds == [row["text"] for row in TEXT_ROWS] and scorer.batch_size == 3
    assert scorer.metrics == {"perplexity": "dev_perplexity", "score": "dev_score"}
    message = "task: a text task is trained alone, not in a mixture (notes, medmcqa)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        DevScorer.from_parts([(task, TEXT_ROWS), (None, generate_canonical_rows(2, seed=1))], 1, 1)


def test_a_perplexity_record_is_the_corpus_perplexity_and_minus_the_mean_nll(monkeypatch):
    from fine_tune.evaluate.perplexity import TextLosses, text_losses

    calls = []

    def losses(model, tokenizer, texts, batch_size=8, max_length=None):
        calls.append((model, tokenizer, texts, batch_size, max_length))
        return TextLosses(np.array([6.0, 3.0]), np.array([4, 2]), 0)

    monkeypatch.setattr(selection, "text_losses", bound_to(text_losses, losses))
    scorer = DevScorer.from_parts([(parse_task_spec(TEXT_TASK), TEXT_ROWS)], batch_size=3, max_new_tokens=9)
    scorer.max_length = 64
    record = scorer.score("model", "tokenizer", step=8)
    assert calls == [("model", "tokenizer", scorer.golds, 3, 64)]
    assert record == {"step": 8, "n": 2, "tokens": 6, "perplexity": pytest.approx(math.exp(1.5)), "score": -1.5,
                      "examples": []}  # fmt: skip
    assert type(record["tokens"]) is int and scorer.history == [record]
    assert scorer.describe(record) == "dev step 8: perplexity 4.482 over 6 tokens"


def test_perplexity_scoring_on_the_tiny_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    scorer = DevScorer.from_parts([(parse_task_spec(TEXT_TASK), TEXT_ROWS)], batch_size=1, max_new_tokens=0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    record = scorer.score(model, AutoTokenizer.from_pretrained(tiny_model_dir), step=0)
    assert record["tokens"] > 0 and record["score"] == pytest.approx(-math.log(record["perplexity"]))


class BaseTrainer:
    """The Trainer's own evaluate (bound to its signature), for a trainer without a dev slice."""

    evaluate = bound_to(
        Trainer.evaluate,
        lambda self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval": {
            "own": (eval_dataset, ignore_keys, metric_key_prefix)
        },
    )


class DevTrainer(selection.DevSelectionMixin, BaseTrainer):
    """What `DevSelectionMixin.evaluate` reads of a Trainer, with the real state, control and callback handler."""

    def __init__(self, scorer, model, step, callbacks=(), args=None):
        from accelerate import Accelerator
        from transformers.trainer_callback import CallbackHandler

        self.dev_scorer, self.model, self.processing_class = scorer, model, Tokenizer("right")
        self.accelerator, self.args = Accelerator(cpu=True), args
        self.state, self.control = TrainerState(global_step=step), TrainerControl()
        self.callback_handler = CallbackHandler(list(callbacks), model, self.processing_class, None, None)
        self.logged = []

    @bound_to(Trainer.log)
    def log(self, logs, start_time=None):
        self.logged.append(dict(logs))


def test_evaluate_without_a_dev_slice_is_the_trainers_own():
    trainer = DevTrainer(None, None, step=0)
    assert trainer.evaluate("data", ["past"], "test") == {"own": ("data", ["past"], "test")}


def test_evaluate_scores_the_dev_slice_in_eval_mode_and_hands_the_metrics_on(monkeypatch, caplog, tmp_path):
    import torch

    caplog.set_level("INFO", logger=selection.__name__)
    split = mixture_split()
    scorer = DevScorer.from_parts([(part.task, part.splits["sft"]) for part in split.parts], 4, 8)
    n, calls = len(scorer.golds), []
    fake_generation(monkeypatch, [answer(gold) for gold in scorer.golds[:-1]] + ["no"], calls)
    model = torch.nn.Linear(1, 1)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", metric_for_best_model="dev_score")
    trainer = DevTrainer(scorer, model, 6, callbacks=[EarlyStoppingCallback(early_stopping_patience=1)], args=args)
    trainer.state.best_metric = 2.0  # an earlier step scored higher: one evaluation without a gain stops training
    metrics_ = trainer.evaluate()
    k = n - 1
    assert metrics_ == {
        "eval_dev_accuracy": k / n,
        "eval_dev_valid_json": k / n,
        "eval_dev_schema_pass": k / n,
        "eval_dev_score": pytest.approx(k / n + k / (n * (n + 1))),
        "eval_dev_accuracy/medqa": 1.0,
        "eval_dev_accuracy/pubmedqa": pytest.approx(2 / 3),
    }
    assert trainer.logged == [metrics_] and calls[0]["training"] is False and model.training is True
    assert trainer.control.should_training_stop, "the callbacks saw the args, the state and the metrics"
    describe = f"dev step 6: accuracy {k / n:.3f}, valid JSON {k / n:.3f}, schema pass {k / n:.3f}"
    assert ("INFO", describe) in selection_logs(caplog)
    model.eval()
    assert set(trainer.evaluate(metric_key_prefix="dev")) == {m.replace("eval_", "dev_", 1) for m in metrics_}
    assert model.training is False, "a model in eval mode stays in it"


def test_evaluate_on_one_tasks_dev_slice_logs_no_per_task_accuracy(monkeypatch, tmp_path):
    import torch

    scorer = DevScorer.from_rows(generate_canonical_rows(4, seed=2), batch_size=2, max_new_tokens=4)
    fake_generation(monkeypatch, [answer(gold) for gold in scorer.golds])
    trainer = DevTrainer(scorer, torch.nn.Linear(1, 1), 2, args=TrainingArguments(str(tmp_path), report_to="none"))
    assert trainer.evaluate() == {
        "eval_dev_accuracy": 1.0, "eval_dev_valid_json": 1.0, "eval_dev_schema_pass": 1.0,
        "eval_dev_score": pytest.approx(1 + 4 / 20),
    }  # fmt: skip
