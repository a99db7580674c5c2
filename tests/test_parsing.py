import json
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fine_tune.task import parsing
from fine_tune.task.parsing import (
    FAILURE_REASONS,
    ParsedResponse,
    completion_text,
    is_letter,
    parse_open_response,
    parse_response,
    parse_response_lenient,
    strip_think,
)
from fine_tune.task.prompts import LETTERS, target_response
from fine_tune.task.spec import RESPONSE_KEYS

VALID = '{"predicted_category": "B", "confidence": 0.8, "reason": "Because."}'


def json_values(allow_non_finite=False):
    """Values json.dumps can write; without NaN/infinities, exactly the values standard JSON can represent."""
    floats = st.floats(allow_nan=allow_non_finite, allow_infinity=allow_non_finite)
    scalars = st.none() | st.booleans() | st.integers() | floats | st.text()
    return st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
    )


valid_responses = st.fixed_dictionaries(
    {
        "predicted_category": st.sampled_from(LETTERS),
        "confidence": st.floats(min_value=0, max_value=1) | st.sampled_from([0, 1]),
        "reason": st.text(min_size=1).filter(str.strip),
    }
)
message_lists = st.lists(
    st.dictionaries(st.sampled_from(["role", "content", "reasoning_content", "x"]), json_values(), max_size=4)
    | json_values(allow_non_finite=True),
    max_size=4,
)


def conversational(text):
    return [{"role": "assistant", "content": text}]


def test_target_response_from_prompts_meets_the_contract():
    row = {"question": "Q?", "options": ["a", "b", "c", "d"], "answer": 3, "exp": "Since d."}
    parsed = parse_response(target_response(row))
    assert parsed == ParsedResponse(True, True, "D", 0.95, "Since d.", None)


def test_valid_response_fields_and_to_dict():
    parsed = parse_response(f"\n  {VALID}\n")
    assert parsed.to_dict() == {
        "json_valid": True,
        "schema_valid": True,
        "category": "B",
        "confidence": 0.8,
        "reason": "Because.",
        "failure": None,
    }


@pytest.mark.parametrize("confidence", ["0", "1", "0.0", "1.0", "1e-3", "5E-1"])
def test_confidence_bounds_and_number_forms_accepted(confidence):
    text = f'{{"predicted_category": "A", "confidence": {confidence}, "reason": "r"}}'
    assert parse_response(text).confidence == float(confidence)


NOT_AN_OBJECT = ("empty", "think_block", "code_fence", "truncated", "trailing_text", "not_json", "not_object")
FAILURE_CASES = [
    ("", "empty"),
    (" \n\t ", "empty"),
    (f"<think>\nhmm\n</think>\n\n{VALID}", "think_block"),
    ("<think>still thinking", "think_block"),
    (f"```json\n{VALID}\n```", "code_fence"),
    (f"```\n{VALID}\n```", "code_fence"),
    ("{", "truncated"),
    ('{"predicted_category": "A", "confidence": 0.5', "truncated"),
    ('{"predicted_category": "A", "confidence": 0.5, "reason": "cut of', "truncated"),
    ('{"predicted_category": "A", "confidence": 0.5, "reason": ["x"', "truncated"),
    (f"{VALID} Hope this helps!", "trailing_text"),
    (f"{VALID}\n{VALID}", "trailing_text"),
    (f"{VALID}}}", "trailing_text"),
    ("The answer is B.", "not_json"),
    (f"Answer: {VALID}", "not_json"),
    ("{'predicted_category': 'B', 'confidence': 0.8, 'reason': 'x'}", "not_json"),
    ('{"predicted_category": "A", "confidence": NaN, "reason": "r"}', "not_json"),
    ('{"predicted_category": "A", "confidence": Infinity, "reason": "r"}', "not_json"),
    ('{"predicted_category": "A", "confidence": -Infinity, "reason": "r"}', "not_json"),
    ('{"predicted_category": "A", "confidence": 0.5, "reason": "r",}', "not_json"),
    ('{"predicted_category": "A" "confidence": 0.5, "reason": "r"}', "not_json"),
    ('"B"', "not_object"),
    ("[]", "not_object"),
    ("0.5", "not_object"),
    ("null", "not_object"),
    ('{"predicted_category": "A", "confidence": 0.5}', "wrong_keys"),
    ('{"predicted_category": "A", "confidence": 0.5, "reason": "r", "extra": 1}', "wrong_keys"),
    ('{"predicted_category": "A", "confidence": 0.5, "reason": "r", "reason": "s"}', "wrong_keys"),
    ('{"Predicted_Category": "A", "confidence": 0.5, "reason": "r"}', "wrong_keys"),
    ("{}", "wrong_keys"),
    ('{"predicted_category": "a", "confidence": 0.5, "reason": "r"}', "bad_category"),
    ('{"predicted_category": " A", "confidence": 0.5, "reason": "r"}', "bad_category"),
    ('{"predicted_category": "E", "confidence": 0.5, "reason": "r"}', "bad_category"),
    ('{"predicted_category": "AB", "confidence": 0.5, "reason": "r"}', "bad_category"),
    ('{"predicted_category": 1, "confidence": 0.5, "reason": "r"}', "bad_category"),
    ('{"predicted_category": ["A"], "confidence": 0.5, "reason": "r"}', "bad_category"),
    ('{"predicted_category": null, "confidence": 0.5, "reason": "r"}', "bad_category"),
    ('{"predicted_category": "A", "confidence": true, "reason": "r"}', "bad_confidence"),
    ('{"predicted_category": "A", "confidence": false, "reason": "r"}', "bad_confidence"),
    ('{"predicted_category": "A", "confidence": "0.5", "reason": "r"}', "bad_confidence"),
    ('{"predicted_category": "A", "confidence": 1.0001, "reason": "r"}', "bad_confidence"),
    ('{"predicted_category": "A", "confidence": -0.1, "reason": "r"}', "bad_confidence"),
    ('{"predicted_category": "A", "confidence": 95, "reason": "r"}', "bad_confidence"),
    ('{"predicted_category": "A", "confidence": 1e400, "reason": "r"}', "bad_confidence"),
    ('{"predicted_category": "A", "confidence": null, "reason": "r"}', "bad_confidence"),
    ('{"predicted_category": "A", "confidence": 0.5, "reason": null}', "bad_reason"),
    ('{"predicted_category": "A", "confidence": 0.5, "reason": 3}', "bad_reason"),
    ('{"predicted_category": "A", "confidence": 0.5, "reason": ["r"]}', "bad_reason"),
    ('{"predicted_category": "A", "confidence": 0.5, "reason": ""}', "empty_reason"),
    ('{"predicted_category": "A", "confidence": 0.5, "reason": " \\n "}', "empty_reason"),
]


@pytest.mark.parametrize(("text", "failure"), FAILURE_CASES)
def test_named_failures(text, failure):
    parsed = parse_response(text)
    assert parsed.failure == failure
    assert not parsed.schema_valid
    assert parsed.json_valid == (failure not in NOT_AN_OBJECT)


def test_every_failure_reason_is_a_constant_and_exercised():
    assert {getattr(parsing, name.upper()) for name in FAILURE_REASONS} == set(FAILURE_REASONS)
    assert {failure for _, failure in FAILURE_CASES} == set(FAILURE_REASONS)


def test_fields_filled_individually_when_another_fails():
    extra_key = parse_response('{"predicted_category": "C", "confidence": 0.4, "reason": "r", "x": 1}')
    assert (extra_key.category, extra_key.confidence, extra_key.reason) == ("C", 0.4, "r")
    bad_conf = parse_response('{"predicted_category": "C", "confidence": 2, "reason": "r"}')
    assert (bad_conf.category, bad_conf.confidence, bad_conf.reason) == ("C", None, "r")
    bad_cat = parse_response('{"predicted_category": "c", "confidence": 0.4, "reason": ""}')
    assert (bad_cat.category, bad_cat.confidence, bad_cat.reason, bad_cat.failure) == (None, 0.4, None, "bad_category")


def test_non_object_failures_leave_fields_empty():
    parsed = parse_response(f"{VALID} trailing")
    assert (parsed.json_valid, parsed.category, parsed.confidence, parsed.reason) == (False, None, None, None)


def test_reason_may_mention_think_and_fences_when_the_object_is_valid():
    text = json.dumps({"predicted_category": "A", "confidence": 0.5, "reason": "no <think> or ``` here"})
    assert parse_response(text).schema_valid


@pytest.mark.parametrize(
    ("completion", "text"),
    [
        ("plain", "plain"),
        (conversational("hi"), "hi"),
        ({"role": "assistant", "content": "hi"}, "hi"),
        ([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "x"}, {"content": "b"}], "ab"),
        ([{"role": "user", "content": "question"}, {"role": "assistant", "content": "answer"}], "answer"),
        ([{"role": "assistant", "content": [{"type": "text", "text": "hi"}, {"type": "image"}]}], "hi"),
        ([{"role": "assistant", "content": "{}", "reasoning_content": "hmm"}], "<think>hmm</think>{}"),
        ([{"role": "assistant", "content": None}], ""),
        (["a", 1, None, ["b"]], "a"),
        ([], ""),
        (None, ""),
        (b"bytes", "bytes"),
        (0.5, "0.5"),
    ],
)
def test_completion_text_forms(completion, text):
    assert completion_text(completion) == text


def test_split_off_reasoning_still_counts_as_think_block():
    message = {"role": "assistant", "content": VALID, "reasoning_content": "Let me think."}
    assert parse_response([message]).failure == "think_block"
    assert parse_response_lenient([message]).schema_valid


def test_completion_text_survives_a_broken_str():
    class Broken:
        def __str__(self):
            raise RuntimeError

    assert completion_text(Broken()) == ""


def test_is_letter_is_exact():
    assert all(is_letter(letter) for letter in LETTERS)
    assert not any(is_letter(x) for x in ("a", "A ", "E", "", None, 0, ["A"]))


LENIENT_CASES = [
    (VALID, None),
    (f"<think>\nI think B.\n</think>\n\n{VALID}", None),
    (f"reasoning opened by the template</think>{VALID}", None),
    (f"```json\n{VALID}\n```", None),
    (f"Sure! Here it is: {VALID} Hope this helps.", None),
    (f"{VALID}\n{VALID.replace('B', 'C')}", None),
    ('{"predicted_category": "A", "confidence": 0.5, "reason": "r"', "truncated"),
    ("<think>B looks right, answer {", "empty"),
    ("no json here", "not_json"),
    ('{"predicted_category": "b", "confidence": 0.5, "reason": "r"}', "bad_category"),
    ('noise {"predicted_category": "A", "confidence": 0.5} noise', "wrong_keys"),
]


@pytest.mark.parametrize(("text", "failure"), LENIENT_CASES)
def test_lenient_parse(text, failure):
    parsed = parse_response_lenient(text)
    assert parsed.failure == failure
    if failure is None:
        assert (parsed.category, parsed.confidence, parsed.reason) == ("B", 0.8, "Because.")


@given(st.text())
def test_never_raises_on_text(text):
    for parsed in (parse_response(text), parse_response_lenient(text)):
        assert parsed.failure in (None, *FAILURE_REASONS)
        assert (parsed.failure is None) == parsed.schema_valid
        assert parsed.json_valid or parsed.schema_valid is False


@given(json_values())
def test_json_valid_iff_a_dict(value):
    assert parse_response(json.dumps(value)).json_valid == isinstance(value, dict)


@given(json_values(allow_non_finite=True))
def test_never_raises_on_json_values(value):
    for completion in (value, json.dumps(value)):
        for parsed in (parse_response(completion), parse_response_lenient(completion)):
            assert (parsed.failure is None) == parsed.schema_valid


@given(message_lists)
def test_never_raises_on_nested_message_junk(completion):
    assert isinstance(completion_text(completion), str)
    for parsed in (parse_response(completion), parse_response_lenient(completion)):
        assert (parsed.failure is None) == parsed.schema_valid


@given(valid_responses, st.booleans(), st.text(alphabet=" \t\n"), st.text(alphabet=" \t\n"))
def test_round_trip(response, ensure_ascii, before, after):
    for completion in (
        before + json.dumps(response, ensure_ascii=ensure_ascii) + after,
        conversational(json.dumps(response)),
    ):
        for parsed in (parse_response(completion), parse_response_lenient(completion)):
            assert parsed.schema_valid
            assert parsed.category == response["predicted_category"]
            assert parsed.confidence == response["confidence"]
            assert parsed.reason == response["reason"]


@given(valid_responses, st.permutations(RESPONSE_KEYS))
def test_key_order_is_free(response, keys):
    assert parse_response(json.dumps({key: response[key] for key in keys})).schema_valid


@given(valid_responses, st.text(min_size=1).filter(str.strip))
def test_trailing_text_fails(response, suffix):
    text = json.dumps(response) + suffix
    assert parse_response(text).failure == "trailing_text"
    if "think>" not in text.lower():  # the lenient parser cuts think tags wherever they are
        assert parse_response_lenient(text).to_dict() == parse_response(json.dumps(response)).to_dict()


@given(valid_responses.filter(lambda r: not set(r["reason"]) & set("<`")), st.data())
def test_proper_prefixes_are_truncated(response, data):
    text = json.dumps(response)
    cut = data.draw(st.integers(min_value=1, max_value=len(text) - 1))
    assert parse_response(text[:cut]).failure == "truncated"


@given(valid_responses, st.sampled_from(RESPONSE_KEYS))
def test_missing_key_is_wrong_keys(response, key):
    del response[key]
    assert parse_response(json.dumps(response)).failure == "wrong_keys"


@given(valid_responses, st.text(min_size=1).filter(lambda k: k not in RESPONSE_KEYS), json_values())
def test_extra_key_is_wrong_keys(response, key, value):
    response[key] = value
    parsed = parse_response(json.dumps(response))
    assert parsed.failure == "wrong_keys"
    assert parsed.category == response["predicted_category"]


@given(valid_responses, st.booleans() | st.text() | st.floats().filter(lambda x: not 0 <= x <= 1) | st.none())
def test_non_numbers_and_out_of_range_confidences_fail(response, confidence):
    response["confidence"] = confidence
    assert parse_response(json.dumps(response)).failure in ("bad_confidence", "not_json")


def reference_strip_think(text: str) -> str:
    """The regular expressions the lenient parser used before (quadratic on many unclosed <think> tags)."""
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.IGNORECASE | re.DOTALL)
    text = re.sub(r"^.*?</think>", "", text, flags=re.IGNORECASE | re.DOTALL)
    return re.sub(r"<think>.*", "", text, flags=re.IGNORECASE | re.DOTALL)


def test_strip_think_matches_the_regular_expressions_on_random_tag_soup():
    rng = random.Random(0)
    pieces = ["<think>", "</think>", "<THINK>", "</Think>", "<thi", "nk>", "a", " {", "}", "\n", '"']
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        assert strip_think(text) == reference_strip_think(text), text


def object_starts(text: str) -> list[int]:
    """Where a JSON object can begin, found without the parser's regex: "{", optional whitespace, then '"' or '}'."""
    starts = []
    for i, char in enumerate(text):
        if char == "{":
            rest = text[i + 1 :].lstrip()
            if rest[:1] in ('"', "}"):
                starts.append(i)
    return starts


def recorded_decodes(monkeypatch) -> list[tuple[str, int]]:
    calls = []
    original = parsing._decode_at

    def recording(window, start):
        calls.append((window, start))
        return original(window, start)

    monkeypatch.setattr(parsing, "_decode_at", recording)
    return calls


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "' * 8000,  # 8,000 candidates, each followed by 56 KB: every window is cut at MAX_OBJECT_CHARS
        "{ " * 1500 + '{"a": "' * 3000 + "prose " + VALID,  # non-candidates, 3,000 failed windows, the answer
        "{ " * 28000,  # a failed decode at each brace counted the lines up to it: now no brace is a candidate
    ],
)
def test_lenient_parse_decodes_one_bounded_window_per_place_an_object_can_begin(monkeypatch, text):
    calls = recorded_decodes(monkeypatch)
    parsed = parse_response_lenient(text)
    assert calls[0] == (text.strip(), 0), "the strict parse reads the whole text once"
    starts = object_starts(text)
    assert len(calls) - 1 == len(starts), "one decode per candidate, none at a brace that cannot begin an object"
    for (window, start), position in zip(calls[1:], starts, strict=True):
        assert start == 0 and window == text[position : position + parsing.MAX_OBJECT_CHARS]
    assert sum(len(window) == parsing.MAX_OBJECT_CHARS for window, _ in calls[1:]) >= min(len(starts), 1000)
    assert parsed.schema_valid == text.endswith(VALID)


class RecordingPattern:
    """A compiled pattern that records each call (method, text length) and forwards it."""

    def __init__(self, pattern, calls):
        self.pattern, self.calls = pattern, calls

    def __getattr__(self, name):
        method = getattr(self.pattern, name)

        def recorded(text, *args, **kwargs):
            self.calls.append((self.pattern.pattern, name, len(text)))
            return method(text, *args, **kwargs)

        return recorded


class RecordingRe:
    """The `re` module, its pattern functions recording each call (pattern, function, text length)."""

    def __init__(self, calls):
        self.calls = calls

    def __getattr__(self, name):
        function = getattr(re, name)
        if not callable(function) or name == "compile":
            return function

        def recorded(pattern, text, *args, **kwargs):
            self.calls.append((getattr(pattern, "pattern", pattern), name, len(text)))
            return function(pattern, text, *args, **kwargs)

        return recorded


def test_unclosed_think_tags_are_scanned_once(monkeypatch):
    """The regexes this replaced rescanned to the end of the text from each of 5,600 unclosed <think> tags."""
    text = "<think> a " * 5600 + VALID
    calls = []
    recorder = RecordingPattern(parsing._THINK_TAG, calls)
    monkeypatch.setattr(parsing, "_THINK_TAG", recorder)
    monkeypatch.setattr(parsing, "re", RecordingRe(calls))
    assert parse_response_lenient(text).failure == "empty", "an unclosed <think> runs to the end: nothing is left"
    tag_scans = [call for call in calls if call[:2] == (r"</?think>", "finditer")]
    assert tag_scans == [(r"</?think>", "finditer", len(text))], "one pass over the tags"
    others = [call for call in calls if call[1] != "finditer"]
    assert all(name == "search" and ".*" not in pattern for pattern, name, _ in others), others
    assert len(others) <= 3, "a bounded number of searches, none of which runs to the end from each tag"


def test_lenient_parse_finds_the_answer_after_long_reasoning_and_prose():
    text = "<think>" + "step {x} " * 6000 + "</think>Sure. { not json } " * 3 + VALID + " bye"
    parsed = parse_response_lenient(text)
    assert parsed.schema_valid and parsed.category == "B"


@pytest.mark.parametrize(
    ("text", "failure"),
    [
        ('{"reason": "x\\"}', "truncated"),  # an escaped quote does not close the string
        ('{"a": "\\\\" x}', "not_json"),  # an escaped backslash does not escape the quote after it
        ('{"a": "}', "truncated"),  # a brace inside a string does not close the object
        ('{"": 1]', "not_json"),  # an empty string closes at its second quote
        ('{"a": 1, X}', "not_json"),  # balanced: not cut off
        ('{"a": X', "truncated"),
        ('{"a": [1, [2]', "truncated"),  # nested: two brackets still open
        ('{"a": [1]', "truncated"),
    ],
)
def test_a_text_is_truncated_only_when_it_ends_inside_a_string_or_an_open_brace(text, failure):
    assert parse_response(text).failure == failure
    assert parse_response_lenient(text).failure == failure


@pytest.mark.parametrize(
    ("text", "failure"),
    [
        ("a { z }", "not_json"),  # braces, but nothing cut off
        ('a { "{" z }', "not_json"),  # the truncation check starts at the first brace, not one inside a string
        ('a {"x": "cut', "truncated"),
    ],
)
def test_lenient_failure_when_no_object_is_found(text, failure):
    assert parse_response_lenient(text).failure == failure


def test_bytes_that_are_not_utf8_are_replaced_never_raised():
    assert completion_text(b"caf\xe9 " + VALID.encode()) == "caf\ufffd " + VALID
    assert parse_response_lenient(b"\xff\xfe" + VALID.encode()).category == "B"


def test_reasoning_split_off_as_thinking_is_put_back_and_text_parts_are_joined():
    message = {"role": "assistant", "thinking": "hmm", "content": [{"type": "text", "text": "a"}, {"text": "b"}]}
    assert completion_text([message]) == "<think>hmm</think>ab"
    assert parse_response([message]).failure == "think_block"


@pytest.mark.parametrize("parse", [parse_response, parse_response_lenient])
def test_the_tasks_letters_decide_the_category(parse):
    five = json.dumps({"predicted_category": "E", "confidence": 0.5, "reason": "r"})
    three = VALID.replace('"B"', '"D"')
    assert parse(five, letters="ABCDE").category == "E" and parse(five).failure == "bad_category"
    assert parse(three, letters="ABC").failure == "bad_category" and parse(three).category == "D"
    assert parse(" " + five + " ", letters="ABCDE").category == "E"


def test_lenient_keeps_a_strictly_valid_response_as_it_is():
    """Think tags inside a strictly valid object's reason are the model's text, not reasoning to strip."""
    text = json.dumps({"predicted_category": "A", "confidence": 0.5, "reason": "<think>x</think> y"})
    assert parse_response_lenient(text) == parse_response(text)
    assert parse_response_lenient(text).reason == "<think>x</think> y"
    assert parse_response_lenient("Sure: " + text.replace('"A"', '"E"'), letters="ABCDE").category == "E"


@pytest.mark.parametrize(
    ("text", "failure"),
    [("1 2", "not_json"), ('"a" ```', "code_fence"), ("[1] </think>", "think_block"), ("{} x", "trailing_text")],
)
def test_a_json_value_followed_by_text_is_trailing_text_only_for_an_object(text, failure):
    assert parse_response(text).failure == failure


ANSWER_OPEN = '{"answer": "Naloxone.", "confidence": 0.8}'


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ('{"answer": "  Naloxone. ", "confidence": 0.8}', ("Naloxone.", True, True, 0.8, None)),
        ('  {"answer": "N", "confidence": 1}  ', ("N", True, True, 1.0, None)),
        ([{"role": "assistant", "content": '{"answer": "N", "confidence": 0}'}], ("N", True, True, 0.0, None)),
        ("", ("", False, False, None, "empty")),
        ("   ", ("", False, False, None, "empty")),
        ('{"answer": "x", "conf', ("", False, False, None, "truncated")),
        ("Naloxone.", ("", False, False, None, "not_json")),
        ('{"answer": "x", "confidence": NaN}', ("", False, False, None, "not_json")),
        ("[1]", ("", False, False, None, "not_object")),
        ("3", ("", False, False, None, "not_object")),
        (ANSWER_OPEN + " more", ("", False, False, None, "trailing_text")),
        ('{"answer": "x"}', ("", True, False, None, "wrong_keys")),
        ('{"answer": "x", "confidence": 0.5, "reason": "r"}', ("", True, False, 0.5, "wrong_keys")),
        ('{"answer": "x", "answer": "y", "confidence": 0.5}', ("", True, False, 0.5, "wrong_keys")),
        ('{"answer": "  ", "confidence": 0.8}', ("", True, False, 0.8, "bad_answer")),
        ('{"answer": 3, "confidence": 0.8}', ("", True, False, 0.8, "bad_answer")),
        ('{"answer": "x", "confidence": 2}', ("", True, False, None, "bad_confidence")),
        ('{"answer": "x", "confidence": true}', ("", True, False, None, "bad_confidence")),
    ],
)
def test_an_open_json_answer_is_one_object_with_exactly_answer_and_confidence(completion, expected):
    parsed = parse_open_response(completion)
    assert (parsed.answer, parsed.json_valid, parsed.schema_valid, parsed.confidence, parsed.failure) == expected
    assert parse_open_response(completion, "json") == parsed, "json is the default answer format"


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        ("<think>hm</think> Naloxone. ", "Naloxone."),
        ("", ""),
        ("  <THINK>a</THINK>b", "b"),
        (ANSWER_OPEN, ANSWER_OPEN),
    ],
)
def test_an_open_text_answer_is_the_completion_without_its_think_block(completion, answer):
    parsed = parse_open_response(completion, "text")
    assert (parsed.answer, parsed.json_valid, parsed.schema_valid, parsed.confidence, parsed.failure) == (
        answer, None, None, None, None
    )  # fmt: skip
