"""Rows longer than max_length are counted before training: refused by default, or dropped and counted; no target
cut before its end-of-turn reaches the trainer (issue [robust] point 1)."""

import logging
from types import SimpleNamespace

import pytest
from datasets import Dataset
from transformers import AutoTokenizer
from trl import SFTTrainer

from fine_tune.data.synthetic import generate_canonical_rows
from fine_tune.errors import DatasetError, RecipeError
from fine_tune.recipes.trainer_configs import MedSFTConfig
from fine_tune.task.prompts import sft_example
from fine_tune.train.overlong import conversation_length, enforce_max_length, find_overlong

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def examples() -> Dataset:
    """16 SFT examples, 4 of them with a long question and 1 with a question that alone is longer than the rest."""
    rows = generate_canonical_rows(16, seed=3)
    for i in (2, 5, 11):
        rows[i]["question"] += " Also consider this." * 12
    rows[13]["question"] += " Also consider this." * 60
    return Dataset.from_list([sft_example(row) for row in rows])


def test_lengths_are_the_lengths_trl_tokenizes(tmp_path, tiny_model_dir, tokenizer, examples):
    trainer = SFTTrainer(
        model=str(tiny_model_dir),
        args=MedSFTConfig(output_dir=str(tmp_path), report_to="none", max_length=None, precision="fp32"),
        train_dataset=examples,
        processing_class=tokenizer,
    )
    tokenized = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    assert tokenized == [conversation_length(example, tokenizer) for example in examples]


def a_max_length(examples, tokenizer) -> int:
    """A max_length that the 12 ordinary rows fit and the 4 long ones do not (the 60-times one: not its prompt)."""
    lengths = sorted(conversation_length(example, tokenizer) for example in examples)
    return lengths[11]


def test_overlong_rows_are_counted(examples, tokenizer):
    max_length = a_max_length(examples, tokenizer)
    overlong = find_overlong(examples, tokenizer, max_length)
    assert sorted(overlong.lengths) == [2, 5, 11, 13]
    assert all(n > max_length for n in overlong.lengths.values())
    assert "4 of 16 SFT examples are longer than max_length" in overlong.describe()
    prompt_fills = find_overlong(examples, tokenizer, conversation_length(examples[13], tokenizer, prompt_only=True))
    assert prompt_fills.prompt_fills == [13]


def test_refused_by_default_with_the_counts(examples, tokenizer):
    args = SimpleNamespace(max_length=a_max_length(examples, tokenizer))
    with pytest.raises(DatasetError, match=r"4 of 16 SFT examples .* set overlong: drop"):
        enforce_max_length(examples, tokenizer, args)


def test_dropped_and_counted_and_no_target_loses_its_end(tmp_path, tiny_model_dir, tokenizer, examples, caplog):
    max_length = a_max_length(examples, tokenizer)
    args = MedSFTConfig(
        output_dir=str(tmp_path), report_to="none", max_length=max_length, precision="fp32", overlong="drop"
    )
    with caplog.at_level(logging.WARNING):
        kept = enforce_max_length(examples, tokenizer, args)
    assert len(kept) == 12
    assert "4 of 16 SFT examples are longer" in caplog.text and "12 left" in caplog.text
    trainer = SFTTrainer(model=str(tiny_model_dir), args=args, train_dataset=kept, processing_class=tokenizer)
    assert len(trainer.train_dataset) == 12, "TRL dropped nothing more"
    for ids in trainer.train_dataset["input_ids"]:
        assert tokenizer.decode(ids).endswith("<|im_end|>\n"), "every target keeps its end-of-turn"


def test_no_max_length_checks_nothing_and_a_bad_policy_is_refused(examples, tokenizer):
    assert enforce_max_length(examples, tokenizer, SimpleNamespace(max_length=None)) is examples
    with pytest.raises(RecipeError, match="overlong must be one of refuse, drop"):
        enforce_max_length(examples, tokenizer, SimpleNamespace(max_length=64, overlong="truncate"))
