"""The README and the pages under docs/: every relative link leads somewhere, the README stays short.

Links are read as GitHub renders Markdown: inline links and images ``[text](target)``, and
reference definitions ``[name]: target``, outside fenced code blocks and inline code. A relative
target must name an existing file or folder (relative to the page); a ``#anchor``, alone or after
a Markdown file, must be the slug of one of that file's headings, by GitHub's rules: lowercase,
punctuation dropped (letters, digits, spaces, ``-`` and ``_`` kept), spaces to hyphens, and a
repeated heading numbered ``-1``, ``-2``, ...
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_BYTES = 30_000
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]*(?:\([^()\s]*\)[^()\s<>]*)*)>?(?:\s+[\"'(][^)]*)?\)"
)
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def prose_lines(text: str, strip_code: bool = True) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code removed unless
    ``strip_code`` is False (a heading's anchor keeps its code's words)."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        opened = FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        lines.append((number, INLINE_CODE.sub("", line) if strip_code else line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading (before numbering repeats)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w keeps letters, digits and _
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (headings in code blocks are not headings)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8"), strip_code=False):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link and image on a page."""
    found = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        found += [(number, m.group(1)) for m in INLINE_LINK.finditer(line)]
        definition = REFERENCE_DEF.match(line)
        if definition:
            found.append((number, definition.group(1)))
    return found


def broken(path: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with the relative links of one page, one line per link."""
    problems = []
    for number, target in links(path):
        if not target or EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        where = f"{path.relative_to(root)}:{number}: {target}"
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not dest.exists():
            shown = dest.relative_to(root) if dest.is_relative_to(root) else dest
            problems.append(f"{where}: no such file {shown}")
            continue
        if (
            anchor
            and dest.is_file()
            and dest.suffix == ".md"
            and unquote(anchor) not in anchors(dest)
        ):
            problems.append(f"{where}: no heading with the anchor #{anchor} in {dest.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page: Path) -> None:
    problems = broken(page)
    assert not problems, "\n".join(problems)


def test_readme_is_short() -> None:
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, (
        f"README.md is {size:,} bytes, over {README_MAX_BYTES:,}: move reference material to docs/"
    )


def test_docs_pages_exist() -> None:
    assert len(PAGES) > 1, "no pages under docs/"


def test_the_checker_sees_broken_links(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(
        "# A page\n\n## Two words: `code`, here\n", encoding="utf-8"
    )
    page = tmp_path / "README.md"
    page.write_text(
        "# Title\n\n## Title\n\n"
        "[ok](docs/a.md) [ok](docs/a.md#two-words-code-here) [ok](#title) [ok](#title-1)\n"
        "![ok](docs/a.md) [ext](https://example.com/x.md) [ref]: docs/a.md\n"
        "`[in code](missing.md)`\n```\n[in a fence](missing.md)\n# not a heading\n```\n"
        "[bad](docs/b.md) [bad](#not-a-heading) [bad](docs/a.md#a-pag)\n[ref]: nowhere.md\n",
        encoding="utf-8",
    )
    assert [p.split(": ", 2)[1] for p in broken(page, tmp_path)] == [
        "docs/b.md",
        "#not-a-heading",
        "docs/a.md#a-pag",
        "nowhere.md",
    ]
