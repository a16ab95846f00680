"""Text in the repository never points at documents the repository does not have
(a design document's sections, paths outside the checkout): a reader could not
follow it.  scripts/ and .ci/ are left to their own checks."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLACES = ("cloudtmpl", "tests", "bench", "examples", "templates", "providers", "schemas",
          "pyproject.toml", "README.md")
OUTSIDE = re.compile("|".join([
    r"\b" + "DES" + r"IGN\b",  # spelled apart so that this file does not match itself
    r"\.\./" + "shared",
]))


def test_no_text_cites_a_document_outside_the_repository() -> None:
    found = []
    for place in PLACES:
        root = REPO / place
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if ".venv" in path.parts or "__pycache__" in path.parts:
                continue
            try:
                text = path.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            for n, line in enumerate(text.splitlines(), 1):
                if OUTSIDE.search(line):
                    found.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_project_file_shape_hint_shows_the_shape() -> None:
    from cloudtmpl.config import _parse
    from cloudtmpl.loader import Document

    # (load_file refuses a top level that is not a mapping first: this is the hint for a
    # document that reached the project parser anyway)
    *_, diags = _parse(Document("cloudtmpl.yaml", "- a\n", ["a"], {}, {}))
    (d,) = [d for d in diags if d.code == "config-shape"]
    assert "'providers: {aws-eu: {type: aws, region: eu-central-1}}'" in d.hint, d.hint
    assert "'default_target: aws-eu'" in d.hint and "'state: sqlite:///" in d.hint
    assert "section" not in d.hint.replace('"Projects, targets and state"', "")
