"""Run the suite against the edges of the supported range that ``setup.cfg`` declares.

``oldest``: every requirement of ``install_requires`` pinned to its ``>=`` floor, on the oldest
Python of the classifiers. ``newest``: the newest releases on the newest Python of the
classifiers. Both come from ``setup.cfg`` itself, so the declaration cannot drift from what is
tested. Each edge gets its own virtualenv (``.venv-oldest``, ``.venv-newest``); the test tools
of the ``test`` extra are the newest in both. ``runtests.py`` picks the redis-server (see
``dev/bootstrap.py``).
"""

from __future__ import annotations

import configparser
import glob
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
EDGES = ("oldest", "newest")
_PYTHON_CLASSIFIER = re.compile(r"Programming Language :: Python :: (3\.\d+)$")


def _setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def declared_requirements() -> list[Requirement]:
    return [Requirement(line) for line in _lines(_setup_cfg()["options"]["install_requires"])]


def oldest_pins(requirements: list[Requirement]) -> list[str]:
    """``name==floor`` for each requirement, from its ``>=`` specifier."""
    pins = []
    for requirement in requirements:
        floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if len(floors) != 1:
            raise SystemExit(f"setup.cfg: install_requires {requirement} needs exactly one '>=' floor to be tested")
        pins.append(f"{requirement.name}=={floors[0]}")
    return pins


def supported_pythons() -> list[str]:
    """The Python versions of the classifiers, oldest first; they must lie within python_requires."""
    config = _setup_cfg()
    versions = sorted(
        {m.group(1) for line in _lines(config["metadata"]["classifiers"]) if (m := _PYTHON_CLASSIFIER.match(line))},
        key=Version,
    )
    python_requires = SpecifierSet(config["options"]["python_requires"])
    outside = [v for v in versions if v not in python_requires]
    if not versions or outside:
        raise SystemExit(
            f"setup.cfg: the 'Programming Language :: Python :: 3.N' classifiers {versions} must be non-empty"
            f" and within python_requires {python_requires}"
        )
    return versions


def find_python(version: str) -> str:
    """An interpreter for ``version`` (e.g. '3.10'): pyenv's newest patch release of it, else PATH."""
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    releases = [Path(p) for p in glob.glob(f"{pyenv_root}/versions/{version}.*")]
    releases = [p for p in releases if re.fullmatch(rf"{re.escape(version)}\.\d+", p.name)]
    if releases:
        return str(max(releases, key=lambda p: Version(p.name)) / "bin" / "python")
    on_path = shutil.which(f"python{version}")
    if on_path:
        return on_path
    raise SystemExit(f"no Python {version} found (looked in {pyenv_root}/versions and for python{version} on PATH)")


def _pip(venv: Path, *args: str) -> None:
    subprocess.check_call([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args])


def prepare(edge: str) -> Path:
    """Create or refresh the edge's virtualenv; returns its python."""
    pythons = supported_pythons()
    python = find_python(pythons[0] if edge == "oldest" else pythons[-1])
    venv = ROOT / f".venv-{edge}"
    stamp = venv / ".rqpool-installed"
    pins = oldest_pins(declared_requirements()) if edge == "oldest" else []
    wanted = hashlib.sha256(f"{python}\n{(ROOT / 'setup.cfg').read_text()}".encode()).hexdigest()
    if venv.exists() and (not stamp.exists() or stamp.read_text() != wanted):
        shutil.rmtree(venv)
    if not venv.exists():
        print(f"creating {venv} with {python}", flush=True)
        subprocess.check_call([python, "-m", "venv", str(venv)])
        _pip(venv, "--upgrade", "pip")
    if edge == "oldest":
        if not stamp.exists():
            _pip(venv, "-e", f"{ROOT}[test]", *pins)
    else:
        # The newest releases every run, not the ones this virtualenv happened to get first.
        _pip(venv, "--upgrade", "--upgrade-strategy", "eager", "-e", f"{ROOT}[test]")
    stamp.write_text(wanted)
    return venv / "bin" / "python"


_SHOW_VERSIONS = """
import importlib.metadata, sys
print("Python", sys.version.split()[0], *(f"{name}=={importlib.metadata.version(name)}" for name in sys.argv[1:]))
"""


def run(edge: str, pytest_args: list[str], redis_server: str | None) -> int:
    """Run pytest in the edge's virtualenv; ``redis_server`` goes first on its PATH when given."""
    python = str(prepare(edge))
    names = [requirement.name for requirement in declared_requirements()]
    shown = subprocess.run([python, "-c", _SHOW_VERSIONS, *names], check=True, capture_output=True, text=True)
    said = subprocess.run([redis_server, "--version"], capture_output=True, text=True).stdout if redis_server else ""
    server = next((word.removeprefix("v=") for word in said.split() if word.startswith("v=")), "none")
    print(f"{edge} supported versions: {shown.stdout.strip()} redis-server=={server}", flush=True)
    env = dict(os.environ)
    if redis_server:
        env["PATH"] = f"{Path(redis_server).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.call(
        [python, "-m", "pytest", "-p", "no:cacheprovider", *(pytest_args or ["tests"])], cwd=ROOT, env=env
    )
