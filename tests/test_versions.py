"""The declared floors are the tested ones: pyproject.toml's lower bounds and the pins of the
floor environment (tests/requirements/floor.txt, built by `make test-floor`) are the same, and
inside that environment (LABELDIST_FLOOR=1) exactly those versions are installed."""

from __future__ import annotations

import os
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_floors() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {}
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(?:>=\s*([0-9][^,;\s]*))?.*", requirement)
        assert match, requirement
        floors[canonical(match.group(1))] = match.group(2)
    return floors


def floor_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "tests" / "requirements" / "floor.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, pinned = line.split("==")
            pins[canonical(name)] = pinned.strip()
    return pins


def test_every_dependency_has_a_floor_and_the_floor_environment_pins_it():
    floors, pins = declared_floors(), floor_pins()
    missing = sorted(name for name, floor in floors.items() if floor is None)
    assert not missing, f"dependencies without a tested floor in pyproject.toml: {missing}"
    unpinned = sorted(set(floors) - set(pins))
    assert not unpinned, f"floors not in tests/requirements/floor.txt: {unpinned}"
    differing = {name: (floors[name], pins[name]) for name in floors if Version(floors[name]) != Version(pins[name])}
    assert not differing, f"pyproject.toml floor != floor environment pin: {differing}"


def test_the_model_path_floors_are_the_versions_seen_on_the_gpu_image():
    # transformers 5.17.0 is where the unary/pairwise scoring broke (a 2-D logits_to_keep is read
    # per row only by later releases); keeping it as the floor keeps that path tested
    pins = floor_pins()
    assert pins["transformers"] == "5.17.0" and pins["huggingface-hub"] == "1.33.0"


@pytest.mark.skipif(os.environ.get("LABELDIST_FLOOR") != "1", reason="only inside the floor environment (make test-floor)")
def test_floor_environment_has_exactly_the_floor_versions():
    for name, pinned in floor_pins().items():
        installed = Version(version(name))
        assert Version(installed.base_version) == Version(pinned), f"{name}: {installed} installed, floor {pinned}"
