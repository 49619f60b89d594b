"""The project documents itself: no file cites a design, API or style document that is not in it.

A newcomer must be able to open every document a comment, docstring, test or page
points at; the project's own documents live in docs/. This scans every tracked text
file (every file under the project when git is not available) for the names of
documents kept outside the repository.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THIS_FILE = Path(__file__).resolve()
SKIPPED_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".playwright-results", ".local"}

# Names of documents outside the repository, and phrases that point at one. Upper-case
# names only: the project's own docs/api.md is fine.
OUTSIDE_DOCUMENTS = [
    re.compile(r"\b(?:DESIGN|API|STYLE)\.md\b"),
    re.compile(r"\bDESIGN invariant"),
    re.compile(r"\bdesign doc(?:ument)?s?\b", re.IGNORECASE),
    re.compile(r"\bthe (?:team's |working )?brief\b", re.IGNORECASE),
    re.compile(r"\bshared/(?:DESIGN|API|STYLE)\b"),
]


def project_files() -> list[Path]:
    if shutil.which("git") and (ROOT / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        return [ROOT / name for name in listed.stdout.decode().split("\0") if name]
    return [
        path for path in ROOT.rglob("*")
        if path.is_file() and not SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts)
    ]


def text_of(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # deleted in the work tree, not yet in the index
        return None
    if b"\0" in data:
        return None  # binary (compiled translations, images)
    return data.decode("utf-8", errors="replace")


def test_no_file_cites_a_document_outside_the_repository():
    # given every text file of the project but this one
    files = [path for path in project_files() if path.resolve() != THIS_FILE]
    assert len(files) > 100
    # when each is searched for the names of outside documents
    citations = []
    for path in files:
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if any(pattern.search(line) for pattern in OUTSIDE_DOCUMENTS):
                citations.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    # then there is none
    assert citations == []


def test_the_scan_recognises_each_kind_of_citation():
    # given lines citing outside documents, and lines that only look alike
    citing = ["see DESIGN.md", "the contract of API.md", "STYLE.md says", "(DESIGN invariant 3)",
              "as the design doc says", "per the brief",
              "/".join(["..", "shared", "DESIGN.md"])]  # built: this file names no outside path
    fine = ["see docs/api.md", "Storefront API in brief", "docs/invariants.md, invariant 3"]
    # then only the citing ones are found
    assert [line for line in citing if not any(p.search(line) for p in OUTSIDE_DOCUMENTS)] == []
    assert [line for line in fine if any(p.search(line) for p in OUTSIDE_DOCUMENTS)] == []
