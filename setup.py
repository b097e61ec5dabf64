"""Package discovery. pyproject.toml holds the metadata; this only maps the card's top-level folders under the
`forgegov` namespace, because setuptools' declarative `find` cannot add a prefix to the packages it finds.

Every folder below a layer is found (a new subfolder ships without anyone remembering to list it); tests, benchmarks
and scripts are not layers and stay out of the wheel.
"""

from setuptools import find_namespace_packages, setup

LAYERS = ("foundation", "audit", "governance", "training", "evaluation", "app", "policies")

packages = [f"forgegov.{name}" for name in find_namespace_packages(
    include=[pattern for layer in LAYERS for pattern in (layer, f"{layer}.*")], exclude=["*.__pycache__"])]

setup(packages=packages, package_dir={"forgegov": "."})
