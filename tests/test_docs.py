"""The documentation cannot drift from the CLI: scripts/check_docs.py on the repository, and on
documents that must fail it (so the check itself can fail)."""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def check_docs():
    spec = importlib.util.spec_from_file_location("check_docs", ROOT / "scripts" / "check_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_docs"] = module       # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_readme_and_docs_pass_the_check(check_docs):
    problems = check_docs.check_all(ROOT)
    assert not problems, "\n".join(map(str, problems))
    n = sum(len(check_docs.simsbrt_commands(line)) for f in check_docs.doc_files(ROOT)
            for _, line in check_docs.fenced_lines(f.read_text(encoding="utf-8")))
    assert n >= 30     # the commands of every page are really found and parsed


def test_readme_keeps_the_ci_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = 'python -m pip install -e ".[test]" && python -m pytest -q'
    assert command in readme and command in ci


def test_check_catches_bad_commands_lengths_and_links(check_docs, tmp_path):
    doc = tmp_path / "docs" / "page.md"
    doc.parent.mkdir()
    doc.write_text(
        "# page\n\n```bash\n"
        "simsbrt compare t10_body --out out/x --no-such-option      # unknown option\n"
        "simsbrt plan t10_body --out x.h5                           # --mode is required\n"
        "simsbrt sweep sweeps/gtv_cord_gap.toml --out o --wokers 2  # a sweep's own options are checked too\n"
        "python -m pip install -e . && simsbrt view a.h5 --out v.html --isodose 3\n"
        "simsbrt view a.h5 b.h5 \\\n  --out v.html\n"
        "```\n\n"
        "[fine](../README.md) [missing](nowhere.md) [web](https://example.org)\n"
        "[anchor](page.md#the-page-itself) [bad anchor](page.md#no-such-heading)\n\n## The page (itself)\n")
    (tmp_path / "README.md").write_text("x" * check_docs.README_MAX_CHARS)
    problems = [str(p) for p in check_docs.check_all(tmp_path)]
    assert any("README.md" in p and "characters" in p for p in problems)
    assert any("--no-such-option" in p for p in problems)
    assert any("simsbrt plan" in p and "--mode" in p for p in problems)
    assert any("--wokers" in p for p in problems)
    assert any("--isodose 3" in p for p in problems)
    assert not any("b.h5" in p for p in problems)                 # continuation line joined, and valid
    assert any("nowhere.md" in p for p in problems)
    assert not any("example.org" in p or "README.md)" in p for p in problems)
    assert any("#no-such-heading" in p for p in problems) and not any("#the-page-itself" in p for p in problems)
    assert len(problems) == 7, problems
