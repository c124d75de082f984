"""Package discovery for dcops (metadata and dependencies are in pyproject.toml).

The repository's top level is the client's: `collectors/`, `analytics/`, `alerts/` and `console/`
sit beside `dcops/`, but they install under the `dcops` namespace (`dcops.collectors`, ...) so
that the distribution claims one import name (`analytics`, `alerts`, `console` and `collectors`
are all taken on PyPI). Every sub-folder is found, not listed: a new package or a data folder
(`data/`, `assets/`) needs no line here. The Alembic migrations (`migrations/`, with their
`versions/`) install the same way, as `dcops.migrations`, so `dcops db upgrade` works from a wheel.
"""

from setuptools import find_namespace_packages, setup

CLIENT_FOLDERS = ("collectors", "analytics", "alerts", "console", "migrations")
EXCLUDE = ["*.__pycache__", "*.__pycache__.*"]

packages = find_namespace_packages(include=["dcops", "dcops.*"], exclude=EXCLUDE)
package_dir = {}
for folder in CLIENT_FOLDERS:
    package_dir[f"dcops.{folder}"] = folder
    packages += [f"dcops.{p}" for p in find_namespace_packages(include=[folder, f"{folder}.*"], exclude=EXCLUDE)]

setup(packages=packages, package_dir=package_dir)
