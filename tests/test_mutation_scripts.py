"""scripts/mutation.py and scripts/mutation_report.py: the module map, the mutmut configuration, the stale copies."""

import re
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import mutation  # noqa: E402


def test_every_mapped_module_is_mutated_and_its_test_files_exist():
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()  # tomllib is 3.11+; the project supports 3.10
    only_mutate = re.search(r"^only_mutate = \[(.*?)\]", pyproject, re.S | re.M).group(1)
    mapped = {module.replace(".", "/") + ".py" for module in mutation.MODULES}
    assert mapped == set(re.findall(r'"([^"]+)"', only_mutate)), "MODULES and pyproject's only_mutate differ"
    for module, files in mutation.MODULES.items():
        assert (REPO_ROOT / (module.replace(".", "/") + ".py")).is_file(), module
        assert files and all((REPO_ROOT / "tests" / name).is_file() for name in files), (module, files)


def test_the_mutation_docs_list_every_mapped_module():
    scope = (REPO_ROOT / "docs" / "mutation.md").read_text().split("## Scope", 1)[1].split("\n## ", 1)[0]
    for module, files in mutation.MODULES.items():
        row = next((line for line in scope.splitlines() if f"`{module.replace('.', '/')}.py`" in line), None)
        assert row is not None, f"{module} missing from docs/mutation.md's Scope"
        assert all(f"`tests/{name}`" in row for name in files), row


@pytest.mark.parametrize(("has_meta", "kept"), [(False, False), (True, True)])
def test_an_unmutated_copy_left_in_mutants_is_removed_so_the_run_mutates_it(tmp_path, monkeypatch, has_meta, kept):
    copy = tmp_path / "fine_tune" / "data" / "rows.py"
    copy.parent.mkdir(parents=True)
    copy.write_text("x = 1\n")
    if has_meta:
        copy.with_suffix(".py.meta").write_text("{}")
    monkeypatch.setattr(mutation, "MUTANTS", tmp_path)
    mutation.drop_unmutated_copy("fine_tune.data.rows")
    assert copy.is_file() == kept
