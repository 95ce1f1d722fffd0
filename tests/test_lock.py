"""The book's environment is locked: requirements.lock pins every package with hashes, agrees with
pyproject.toml's ranges and scripts/pins.in, and is what this environment has installed."""

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of every package in requirements.lock."""
    out, name = {}, None
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", line)
        if m:
            name = canonicalize_name(m.group(1))
            out[name] = (m.group(2), 0)
        elif "--hash=sha256:" in line and name:
            out[name] = (out[name][0], out[name][1] + 1)
    return out


def test_every_locked_package_is_exact_and_hashed():
    lock = locked()
    assert len(lock) > 100
    assert not [n for n, (_, hashes) in lock.items() if hashes == 0]
    assert lock["torch"][0] == "2.14.1" and lock["torchvision"][0] == "0.29.1"
    assert int(lock["ipykernel"][0].split(".")[0]) < 7  # 7.x hangs under nbclient (issue 21)


def test_the_lock_satisfies_the_package_and_the_pins():
    lock = locked()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"]) + [r for extra in ("book", "test", "timm")
                                              for r in project["optional-dependencies"][extra]]
    wanted += [line.split("#")[0].strip() for line in (ROOT / "scripts/pins.in").read_text().splitlines()
               if line.split("#")[0].strip()]
    for text in wanted:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in lock, f"{name} is wanted but not locked: run `make lock`"
        assert req.specifier.contains(lock[name][0], prereleases=True), f"{name} {lock[name][0]} is not {req}"


def test_this_environment_is_the_lock():
    lock = locked()
    wrong = {}
    for name, (version, _) in lock.items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = None
        if have is None or have.split("+")[0] != version.split("+")[0]:
            wrong[name] = (have, version)
    assert not wrong, f"installed differs from requirements.lock (installed, locked): {wrong}; run `make setup`"


def test_every_execution_path_has_the_cell_timeout_of_its_profile():
    import yaml

    from nadbook.book import CELL_TIMEOUT

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["timeout"] == CELL_TIMEOUT["full"]
    make = (ROOT / "Makefile").read_text()
    assert f"--nbmake-timeout={CELL_TIMEOUT['smoke']}" in make
    assert f"--execution-timeout {CELL_TIMEOUT['full']}" in make and f"each cell {CELL_TIMEOUT['full']} s" in make
