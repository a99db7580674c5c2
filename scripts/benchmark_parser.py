"""Time the lenient parser on the 56 KB inputs that used to be quadratic: before (the regexes and the decode from
every brace that commit 9b25b01 replaced, kept here verbatim as `before_lenient`) and after (`parse_response_lenient`).

python scripts/benchmark_parser.py [--repeats 3]

Prints a Markdown table of the best of `--repeats` wall times per input. The mechanism (one pass over the think tags,
one bounded decode window per place an object can begin) is what the tests check: tests/test_parsing.py.
"""

import argparse
import re
import time

from fine_tune.task.parsing import (
    EMPTY,
    NOT_JSON,
    TRUNCATED,
    _check_object,
    _decode_at,
    _ends_inside_value,
    _failed,
    completion_text,
    parse_response,
    parse_response_lenient,
)

ANSWER = '{"predicted_category": "B", "confidence": 0.8, "reason": "Because."}'
INPUTS = {
    '`"<think> a " * 5600 + answer` (unclosed tags)': "<think> a " * 5600 + ANSWER,
    '`"{ " * 28000`': "{ " * 28000,
    '`\'{"a": "\' * 8000`': '{"a": "' * 8000,
    "closed `<think>` of 56 KB + answer": "<think>" + "x" * 56000 + "</think>" + ANSWER,
}

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_UNOPENED_THINK = re.compile(r"^.*?</think>", re.IGNORECASE | re.DOTALL)
_UNCLOSED_THINK = re.compile(r"<think>.*", re.IGNORECASE | re.DOTALL)


def before_lenient(completion):
    """The lenient parser before 9b25b01: three regexes over the text, then a whole-rest decode from each "{"."""
    strict = parse_response(completion)
    if strict.json_valid:
        return strict
    text = _THINK_BLOCK.sub("", completion_text(completion))
    text = _UNCLOSED_THINK.sub("", _UNOPENED_THINK.sub("", text)).strip()
    if not text:
        return _failed(EMPTY)
    for start in (m.start() for m in re.finditer(r"\{", text)):
        try:
            value, _ = _decode_at(text, start)
        except (ValueError, RecursionError):
            continue
        return _check_object(value)
    first_brace = text.find("{")
    return _failed(TRUNCATED if first_brace >= 0 and _ends_inside_value(text[first_brace:]) else NOT_JSON)


def best_time(parse, text: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        parse(text)
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print("| input (56 KB) | before | after | same result |\n|---|---|---|---|")
    for name, text in INPUTS.items():
        before = best_time(before_lenient, text, args.repeats)
        after = best_time(parse_response_lenient, text, args.repeats)
        same = before_lenient(text) == parse_response_lenient(text)
        print(f"| {name} | {before:.3f} s | {after:.3f} s | {'yes' if same else 'no'} |")


if __name__ == "__main__":
    main()
