"""Shared fixtures: paths to test data and the third-party data in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcops.site import load_site
from dcops.topology import build_inventory

REPO = Path(__file__).resolve().parents[1]
SMALL_SITE = REPO / "tests" / "data" / "small-site.yaml"
DEMO_SITE = REPO / "examples" / "demo-site.yaml"
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()
ARTIFACTS = REPO / "artifacts"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; skips the test, naming the path, when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"third-party data not found: {p}")
    return p


@pytest.fixture(scope="session")
def small_site():
    return load_site(SMALL_SITE)


@pytest.fixture(scope="session")
def small_inventory(small_site):
    return build_inventory(small_site)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
