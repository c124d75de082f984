"""Files dcops ships as package data (defaults that must work from a wheel, not only a checkout).

    sites/demo-site.yaml    the site `dcops demo` runs by default (examples/demo-site.yaml)
    sites/small-site.yaml   the site `dcops eval scenarios` simulates by default (tests/data/small-site.yaml)

In the repository both are links to the files they name, so there is one copy to edit; a wheel
holds their contents.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["site_file"]


def site_file(name: str) -> Path:
    """The path of a shipped site config, e.g. `site_file("demo-site.yaml")`."""
    return Path(__file__).resolve().parent / "sites" / name
