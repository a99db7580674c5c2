"""Text metrics agree with the reference libraries on fixed pairs, score Korean correctly, and carry intervals."""

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer

from fine_tune.evaluate import text_metrics as tm

ENGLISH = [
    ("the cat sat on the mat", "the cat is on the mat"),
    ("A quick brown fox jumps.", "The quick brown fox jumped over the dog."),
    ("Insulin lowers blood glucose", "insulin reduces blood sugar levels"),
    ("Aortic stenosis", "Aortic stenosis."),
    ("", "Naloxone."),
]
KOREAN = [  # (prediction, reference, rouge1 F by hand: eojeol tokens)
    ("당뇨병은 혈당이 높다", "당뇨병은 혈당이 높은 질환이다", 2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4)),
    ("페니실린 계열 항생제를 쓴다", "페니실린 계열 항생제를 쓴다.", 1.0),
    ("흉통", "흉통이 가장 흔한 증상이다", 0.0),  # "흉통" is not the token "흉통이"
]


def test_rouge_matches_rouge_score_on_english():
    reference = rouge_scorer.RougeScorer(list(tm.ROUGE_TYPES))
    for prediction, gold in ENGLISH:
        expected = {name: score.fmeasure for name, score in reference.score(gold, prediction).items()}
        assert tm.rouge(prediction, gold) == pytest.approx(expected)


def test_korean_scores_where_the_default_tokenizer_gives_zero():
    default = rouge_scorer.RougeScorer(["rouge1"])
    for prediction, gold, rouge1 in KOREAN:
        assert default.score(gold, prediction)["rouge1"].fmeasure == 0.0  # why the project's tokenizer exists
        assert tm.rouge(prediction, gold)["rouge1"] == pytest.approx(rouge1)
    assert tm.rouge("당뇨병은 혈당이 높다", "당뇨병은 혈당이 높다") == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert tm.exact_match("페니실린 계열 항생제를 쓴다", "페니실린 계열 항생제를 쓴다.") == 1.0
    assert tm.token_f1("당뇨병은 혈당이 높다", "당뇨병은 혈당이 높은 질환이다") == pytest.approx(KOREAN[0][2])


def test_bleu_is_sacrebleu_corpus_bleu():
    predictions, references = zip(*ENGLISH, strict=True)
    expected = sacrebleu.corpus_bleu(list(predictions), [list(references)]).score
    assert tm.corpus_bleu(predictions, references) == pytest.approx(expected)
    korean = [p for p, _, _ in KOREAN], [r for _, r, _ in KOREAN]
    assert tm.corpus_bleu(*korean) == pytest.approx(sacrebleu.corpus_bleu(korean[0], [korean[1]]).score)
    stats = tm.CorpusBleu.of(predictions, references)
    rows = np.array([0, 0, 2, 3])
    resampled = sacrebleu.corpus_bleu([predictions[i] for i in rows], [[references[i] for i in rows]]).score
    assert stats.score(rows) == pytest.approx(resampled)  # a bootstrap resample is the BLEU of those rows


def test_token_f1_and_exact_match_squad_rule():
    assert tm.token_f1("the cat sat", "the cat") == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert tm.token_f1("", "") == 1.0 and tm.token_f1("", "x") == 0.0
    assert tm.exact_match("Aortic stenosis", "aortic  stenosis.") == 1.0
    assert tm.exact_match("Aortic stenosis", "mitral stenosis") == 0.0


def test_intervals_bracket_the_value_and_paired_diff_of_a_model_with_itself_is_zero():
    predictions, references = zip(*ENGLISH, strict=True)
    rows = {name: [tm.row_scores(p, r)[name] for p, r in ENGLISH] for name in tm.ROW_METRICS}
    bleu = tm.CorpusBleu.of(predictions, references)
    metrics, intervals = tm.metric_intervals(rows, bleu, 500, 0)
    assert set(metrics) == set(intervals) == set(tm.OPEN_METRICS)
    for name, entry in intervals.items():
        assert entry["ci_low"] <= metrics[name] <= entry["ci_high"], name
        assert entry["n"] == len(ENGLISH)
    assert intervals["rouge1"]["ci_low"] < intervals["rouge1"]["ci_high"]  # rows differ: a real spread
    same = tm.paired_differences((rows, bleu), (rows, bleu), 200, 0)
    assert all(d == {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0} for d in same.values())
    worse = {name: [0.0] * len(ENGLISH) for name in tm.ROW_METRICS}
    diff = tm.paired_differences((rows, bleu), (worse, tm.CorpusBleu.of([""] * 5, references)), 200, 0)
    assert diff["rouge1"]["diff"] == pytest.approx(metrics["rouge1"]) and diff["rouge1"]["ci_low"] > 0
