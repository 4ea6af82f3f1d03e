"""The pins of ``runtests.py --versions``, built from what ``setup.cfg`` declares."""

from __future__ import annotations

import configparser

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from dev.versions import ROOT, declared_requirements, oldest_pins, supported_pythons


def test_each_declared_requirement_is_pinned_to_a_floor_it_accepts():
    requirements = declared_requirements()
    pins = [Requirement(pin) for pin in oldest_pins(requirements)]
    assert [pin.name for pin in pins] == [requirement.name for requirement in requirements]
    for requirement, pin in zip(requirements, pins, strict=True):
        (floor,) = (spec.version for spec in pin.specifier)
        assert requirement.specifier.contains(floor), (requirement, floor)


def test_a_requirement_without_a_floor_cannot_be_tested():
    with pytest.raises(SystemExit, match=r"install_requires rq<3 needs exactly one '>=' floor"):
        oldest_pins([Requirement("rq<3")])


def test_the_oldest_python_is_the_floor_of_python_requires():
    pythons = supported_pythons()
    assert pythons == sorted(pythons, key=Version) and len(pythons) >= 2
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["options"]["python_requires"] == f">={pythons[0]}"
