"""The documentation: the site builds in strict mode, and the README is a front page whose links
work and whose test command is the one CI runs.

The site (mkdocs.yml: the guide, the results pages and the API reference from the docstrings)
is built with ``mkdocs build --strict``, so a broken link, a link to a missing heading, a page
left out of the nav or a docstring mkdocstrings cannot render fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"
TEST_COMMAND = "python -m pytest -q"
MAX_README_LINES = 260

# [text](target) and ![alt](target), not inside inline code; the target ends at a space or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def build_site(config: Path, site_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
         "--site-dir", str(site_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


def test_site_builds_in_strict_mode(tmp_path):
    pytest.importorskip("mkdocs")
    result = build_site(ROOT / "mkdocs.yml", tmp_path / "site")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    assert (tmp_path / "site" / "index.html").exists()
    for page in ("guide/cli", "results/moses", "reference/api"):
        assert (tmp_path / "site" / page / "index.html").exists(), page


def test_strict_build_catches_a_broken_link_and_an_unlisted_page(tmp_path):
    """The site's own settings (not mkdocs' defaults, which only log these) make a link to a
    missing page, a link to a missing heading and a page missing from the nav fail the build."""
    pytest.importorskip("mkdocs")
    yaml = pytest.importorskip("yaml")
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config["docs_dir"] = str(docs)
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            plugin["mkdocstrings"]["handlers"]["python"]["paths"] = [str(ROOT)]
    with (docs / "index.md").open("a") as index:
        index.write("\n[gone](guide/no-such-page.md) and [nowhere](guide/cli.md#no-such-heading)\n")
    (docs / "guide" / "unlisted.md").write_text("# Not in the nav\n")
    broken = tmp_path / "mkdocs.yml"
    broken.write_text(yaml.safe_dump(config))
    result = build_site(broken, tmp_path / "site")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "no-such-page.md" in output, output
    assert "no-such-heading" in output, output
    assert "unlisted.md" in output, output


def github_slug(heading: str) -> str:
    """The anchor a code host gives a Markdown heading: lower case, punctuation dropped, spaces
    to hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(markdown: str) -> set[str]:
    body = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    return {github_slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", body, flags=re.M)}


def relative_links(markdown: str) -> list[str]:
    body = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    body = re.sub(r"`[^`\n]*`", "", body)
    return [t for t in LINK.findall(body)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def broken_links(markdown: str, base: Path) -> list[str]:
    broken = []
    for target in relative_links(markdown):
        path, _, anchor = target.partition("#")
        file = (base / path).resolve()
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in headings(file.read_text()):
            broken.append(target)
    return broken


def test_link_checker_finds_a_broken_link(tmp_path):
    (tmp_path / "page.md").write_text("# A heading\n")
    text = ("[ok](page.md) [ok](page.md#a-heading) [web](https://example.org) `[code](x.md)`\n"
            "[missing](nope.md) [bad anchor](page.md#other)\n")
    assert broken_links(text, tmp_path) == ["nope.md", "page.md#other"]


def test_readme_links_point_at_existing_files():
    text = README.read_text()
    links = relative_links(text)
    assert len(links) >= 10, links   # the guide, the results pages and ARCHITECTURE.md
    assert broken_links(text, ROOT) == []


def test_docs_links_work_on_a_code_host():
    """The guide is read on the code host too, whose heading anchors are not always mkdocs'."""
    pages = sorted((ROOT / "docs").rglob("*.md"))
    assert len(pages) >= 15
    broken = {str(p.relative_to(ROOT)): broken_links(p.read_text(), p.parent) for p in pages}
    assert {page: links for page, links in broken.items() if links} == {}


def test_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"


def test_readme_has_the_test_command_that_ci_runs():
    ci_commands = [line.strip() for line in CI_RUN.read_text().splitlines()
                   if line.strip().startswith("python -m pytest")]
    assert ci_commands == [TEST_COMMAND]
    readme = README.read_text()
    assert f". .venv/bin/activate && {TEST_COMMAND}\n" in readme
