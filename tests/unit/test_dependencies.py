"""What pyproject.toml declares, what the code imports, and the lock (infra/constraints.txt)
agree; and this environment is the lock (`make install` made it from the lock, nothing since)."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import sys
import sysconfig
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "infra" / "constraints.txt"
# Declared, though no module of ours imports them: why each is needed.
NEEDED_BUT_NOT_IMPORTED = {
    "optuna": "Ray Tune's OptunaSearch imports it for the search's TPE sampler",
}
# Packages that `pip freeze` leaves out, and those only a CUDA build of torch brings.
NOT_LOCKED = {"pip", "setuptools", "wheel", "ganpipe"}
CUDA_ONLY_PREFIXES = ("nvidia-", "triton", "cuda-")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirements(*extras: str) -> list[Requirement]:
    project = _project()
    texts = list(project["dependencies"])
    for extra in extras:
        texts += project["optional-dependencies"][extra]
    return [Requirement(text) for text in texts]


def _lock() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def _imported_roots() -> set[str]:
    roots = set()
    for package in ("gan_core", "pipelines"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    roots.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    roots.add(node.module.split(".")[0])
    return roots - set(sys.stdlib_module_names) - {"gan_core", "pipelines", "__future__"}


def test_every_library_the_code_imports_is_declared():
    declared = {canonicalize_name(r.name) for r in _requirements()}
    distributions = metadata.packages_distributions()
    for root in sorted(_imported_roots()):
        providers = {canonicalize_name(name) for name in distributions.get(root, [])}
        assert providers & declared, f"`import {root}` (from {sorted(providers)}) is not in pyproject's dependencies"


def test_every_declared_library_is_imported_or_says_why_not():
    imported = _imported_roots()
    provides: dict[str, set[str]] = {}
    for root, names in metadata.packages_distributions().items():
        for name in names:
            provides.setdefault(canonicalize_name(name), set()).add(root)
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        assert provides.get(name, set()) & imported or name in NEEDED_BUT_NOT_IMPORTED, (
            f"{requirement.name} is declared but nothing imports it"
        )


def test_the_lock_pins_every_requirement_within_its_range():
    pins, environment = _lock(), default_environment()
    for requirement in _requirements("test", "server"):
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in {LOCK.name}: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} has {name}=={pins[name]}, outside pyproject's {requirement}: run `make lock`"
        )


def test_this_environment_is_the_lock():
    """Fails after a `pip install` beside the lock: run `make clean install`, or `make lock`."""
    pins = _lock()
    installed = {}
    # Only what is installed in site-packages: importing setuptools (torch's cpp_extension does)
    # puts setuptools/_vendor on sys.path, whose vendored copies are no installs of ours.
    site_packages = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    for distribution in metadata.distributions(path=site_packages):
        name = canonicalize_name(distribution.metadata["Name"])
        if name not in NOT_LOCKED and not name.startswith(CUDA_ONLY_PREFIXES):
            installed[name] = distribution.version.split("+")[0]  # torch's +cpu / +cu128
    assert {n: v for n, v in installed.items() if pins.get(n) != v} == {}, "installed, not as locked"
    assert sorted(set(pins) - set(installed)) == [], "locked, not installed"
