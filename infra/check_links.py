"""Checks the links of the project's markdown (README.md, CHANGELOG.md, docs/**/*.md): each
relative link names a file of the repository (never one outside it) and each `#anchor` a
heading of its target, as GitHub renders it; a link that leaves the repository must be a
public URL (http or https). Offline: no URL is fetched. Run by `make lint`:
.venv/bin/python infra/check_links.py
"""

from __future__ import annotations

import os
import re
import sys
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# [text](target) and [text](target "title"); images too. Reference definitions: [id]: target
INLINE_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ID = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def markdown_files(root: str = ROOT) -> list[str]:
    files = [os.path.join(root, name) for name in ("README.md", "CHANGELOG.md")]
    for folder, _, names in os.walk(os.path.join(root, "docs")):
        files += [os.path.join(folder, n) for n in names if n.endswith(".md")]
    return sorted(f for f in files if os.path.exists(f))


def prose_lines(text: str) -> list[tuple[int, str, str]]:
    """The lines outside fenced code blocks: number, text, text with code spans blanked."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        if fence is None and (stripped.startswith("```") or stripped.startswith("~~~")):
            fence = stripped[:3]
            continue
        if fence is not None:
            if stripped.startswith(fence):
                fence = None
            continue
        lines.append((number, line, re.sub(r"`[^`]*`", "``", line)))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text without markup, lower case, punctuation but
    hyphens and underscores dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = unicodedata.normalize("NFC", text).lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(path: str) -> set[str]:
    text = read(path)
    found, seen = set(), {}
    for _, line, _ in prose_lines(text):
        found.update(HTML_ID.findall(line))
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: str) -> list[tuple[int, str]]:
    """Link targets, and the relative paths named in code spans (`../x/y.md`), which must
    resolve as well."""
    text = read(path)
    found = []
    for number, raw, line in prose_lines(text):
        found += [(number, target) for target in INLINE_LINK.findall(line)]
        found += [(number, target) for target in re.findall(r"`(\.\./[^`\s]+)`", raw)]
        match = REFERENCE.match(line)
        if match:
            found.append((number, match.group(1)))
    return found


def problems(root: str = ROOT) -> list[str]:
    found, cache = [], {}
    for path in markdown_files(root):
        where = os.path.relpath(path, root)
        for number, target in links(path):
            if re.match(r"^(https?:|mailto:)", target):
                continue
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                found.append(f"{where}:{number}: {target}: not a public URL")
                continue
            file_part, _, anchor = target.partition("#")
            resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if os.path.relpath(resolved, root).startswith(".."):
                found.append(f"{where}:{number}: {target}: outside the repository")
                continue
            if not os.path.exists(resolved):
                found.append(f"{where}:{number}: {target}: no such file")
                continue
            if anchor and resolved.endswith(".md"):
                if resolved not in cache:
                    cache[resolved] = anchors(resolved)
                if anchor not in cache[resolved]:
                    found.append(f"{where}:{number}: {target}: no heading #{anchor} there")
    return found


def main() -> int:
    found = problems()
    for problem in found:
        print(problem, file=sys.stderr)
    files = len(markdown_files())
    if found:
        print(f"{len(found)} broken links in {files} markdown files", file=sys.stderr)
        return 1
    print(f"links: {files} markdown files, every link resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
