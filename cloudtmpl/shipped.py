"""The data directories shipped with cloudtmpl: provider catalogs, templates, schemas."""

from __future__ import annotations

from pathlib import Path


def data_dir(name: str) -> Path:
    """A shipped data directory (``providers`` or ``templates``).

    In an installed wheel it lives in ``cloudtmpl/_data/``; in a source checkout
    at the repository root.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data" / name, here.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cloudtmpl data directory {name!r} is missing from this install")
