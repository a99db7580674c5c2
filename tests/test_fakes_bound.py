"""No stand-in a test patches in accepts any call: a fake taking *args or **kwargs is bound to the real signature
(tests/signatures.py), refuses every call, or passes the call on to the real function."""

import ast
from pathlib import Path

import pytest
from conftest import REPO_ROOT

TESTS = sorted(REPO_ROOT.joinpath("tests").rglob("*.py"))


def _is_call_to(node: ast.AST, names: set[str]) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id in names) or (
        isinstance(func, ast.Attribute) and func.attr in names
    )


def _open_signature(args: ast.arguments) -> bool:
    return args.vararg is not None or args.kwarg is not None


def _checked_body(body: list[ast.AST]) -> bool:
    """The body refuses the call, binds it to a real signature, or passes *args/**kwargs on to the real callable."""
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.Raise) or _is_call_to(node, {"fail", "bind"}):
            return True
        if isinstance(node, ast.Call) and any(isinstance(a, ast.Starred) for a in node.args):
            return True
        if isinstance(node, ast.Call) and any(k.arg is None for k in node.keywords):
            return True
    return False


def _functions(tree: ast.Module) -> dict[str, list[ast.AST]]:
    found: dict[str, list[ast.AST]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.setdefault(node.name, []).append(node)
    return found


def _open_fake(node: ast.AST, functions: dict[str, list[ast.AST]]) -> bool:
    if isinstance(node, ast.Lambda):
        return _open_signature(node.args) and not _checked_body([ast.Expr(node.body)])
    if isinstance(node, ast.Name):
        return any(_open_definition(d, functions) for d in functions.get(node.id, []))
    return False


def _open_definition(definition: ast.AST, functions: dict[str, list[ast.AST]]) -> bool:
    """An open stand-in, or a factory that returns one (`generator_for` handing out a generation function)."""
    if isinstance(definition, ast.ClassDef):
        inits = [n for n in definition.body if isinstance(n, ast.FunctionDef) and n.name in ("__init__", "__call__")]
        return any(_open_definition(init, functions) for init in inits)
    if any(_is_call_to(d, {"bound_to"}) or getattr(d, "id", None) == "bound_to" for d in definition.decorator_list):
        return False
    returned = [n.value for n in ast.walk(definition) if isinstance(n, ast.Return) and n.value is not None]
    factory = any(
        isinstance(value, ast.Lambda | ast.Name) and value is not definition and _open_fake(value, functions)
        for value in returned
        if not (isinstance(value, ast.Name) and value.id == definition.name)
    )
    return factory or (_open_signature(definition.args) and not _checked_body(definition.body))


def open_fakes(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    functions = _functions(tree)
    found = []
    for node in ast.walk(tree):
        if _is_call_to(node, {"setattr"}) and isinstance(node.func, ast.Attribute):
            if getattr(node.func.value, "id", None) != "monkeypatch" or len(node.args) < 2:
                continue
            if _open_fake(node.args[-1], functions):
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_patched_fake_accepts_any_call():
    found = [where for path in TESTS for where in open_fakes(path)]
    assert not found, "fakes taking *args/**kwargs without bound_to: " + ", ".join(found)


@pytest.mark.parametrize(
    ("source", "open_"),
    [
        ("monkeypatch.setattr(m, 'f', lambda *a, **k: 1)", True),
        ("monkeypatch.setattr(m, 'f', lambda *a, **k: pytest.fail('no'))", False),
        ("monkeypatch.setattr(m, 'f', lambda x, y=1: 1)", False),
        ("def fake(**kwargs):\n    return 1\nmonkeypatch.setattr(m, 'f', fake)", True),
        ("@bound_to(real)\ndef fake(**kwargs):\n    return 1\nmonkeypatch.setattr(m, 'f', fake)", False),
        ("def fake(*a, **k):\n    return real(*a, **k)\nmonkeypatch.setattr(m, 'f', fake)", False),
        ("class Fake:\n    def __init__(self, **kwargs):\n        pass\nmonkeypatch.setattr(m, 'C', Fake)", True),
        ("monkeypatch.setattr('pkg.f', lambda **k: 1)", True),
        (
            "def fake(**k):\n    return 1\ndef factory(name):\n    return fake\nmonkeypatch.setattr(m, 'f', factory)",
            True,
        ),
    ],
)
def test_the_scan_tells_an_open_fake(tmp_path, source, open_):
    path = tmp_path / "test_x.py"
    path.write_text(source + "\n")
    assert bool(open_fakes(path)) == open_
