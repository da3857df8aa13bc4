"""The hub's Dockerfile, checked as far as a machine without a Docker engine can: its instructions (non-root user,
healthcheck on /healthz, nothing fetched at run time, no secret baked in) and the wheel it installs, built from the
same pyproject.toml with every file the hub needs at run time."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments), continuation lines joined."""
    stages: list[list[tuple[str, str]]] = []
    logical = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        if not stages and word.upper() == "ARG":
            continue  # a global ARG (the base image) before the first FROM
        assert stages, "the Dockerfile must start with FROM (after global ARGs)"
        stages[-1].append((word.upper(), rest.strip()))
    return stages


def test_the_image_runs_as_an_unprivileged_user_with_a_healthcheck_on_healthz() -> None:
    final = instructions()[-1]
    users = [args for word, args in final if word == "USER"]
    assert users, "the final stage sets no USER: the hub would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    last_user = max(i for i, (word, _) in enumerate(final) if word == "USER")
    assert all(word != "RUN" for word, _ in final[last_user:]), "RUN after USER would need root"
    health = [args for word, args in final if word == "HEALTHCHECK"]
    assert len(health) == 1
    exposed = [args for word, args in final if word == "EXPOSE"]
    assert exposed == ["8080"]
    assert "http://127.0.0.1:8080/healthz" in health[0]
    assert re.search(r"VAKA_HTTP__PORT=8080\b", " ".join(a for w, a in final if w == "ENV"))
    assert ("CMD", '["serve"]') in final
    assert ("ENTRYPOINT", '["vaka-entrypoint"]') in final


def packages() -> list[str]:
    """The packages pyproject.toml puts into the wheel."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return list(config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])


def test_the_image_is_built_from_pyproject_and_installs_offline() -> None:
    build, final = instructions()[0], instructions()[-1]
    copied = " ".join(args for word, args in build if word == "COPY")
    assert "pyproject.toml" in copied
    for package in packages():
        assert f"COPY {package} ./{package}" in DOCKERFILE.read_text(), f"the build stage does not copy {package}/"
    for word, args in final:
        if word == "RUN" and "pip install" in args:
            assert "--no-index" in args, "the final stage must install only the wheels built before"
        assert word != "ADD", "ADD can fetch URLs; use COPY"
    for stage in instructions():
        for word, args in stage:
            if word == "COPY" and "--from" not in args:
                for source in args.split()[:-1]:
                    if not source.startswith("--"):
                        assert (REPO / source).exists(), f"COPY {source}: not in the repository"


def locked(path: Path) -> dict[str, str]:
    """name -> version of the entries of a lock file that apply to Python 3.11 on Linux (the image, CI)."""
    found = {}
    for match in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+?)(?: ;(.*?))? \\$", path.read_text(), re.M):
        name, version, marker = match.groups()
        if marker is None or Marker(marker).evaluate({"python_full_version": "3.11.13", "sys_platform": "linux"}):
            found[canonicalize_name(name)] = version
    return found


def test_the_image_installs_only_what_the_lock_file_pins() -> None:
    build, final = instructions()[0], instructions()[-1]
    runs = " ".join(args for word, args in build if word == "RUN")
    assert "pip install --no-cache-dir --require-hashes -r requirements/build.lock" in runs
    assert "pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r requirements/hub.lock" in runs
    assert "--no-deps --no-build-isolation --wheel-dir /wheels ." in runs  # Vaka itself: nothing resolved
    installs = [args for word, args in final if word == "RUN" and "pip install" in args]
    assert len(installs) == 1
    assert "--no-index --no-deps /tmp/wheels/*.whl" in installs[0]
    assert "pip check" in installs[0]


def test_the_lock_files_hold_every_dependency_within_pyproject_and_agree() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    hub, dev = locked(REPO / "requirements" / "hub.lock"), locked(REPO / "requirements" / "dev.lock")
    build = locked(REPO / "requirements" / "build.lock")
    for lock, wanted in (
        (hub, project["dependencies"]),
        (dev, project["dependencies"] + project["optional-dependencies"]["dev"]),
    ):
        for line in wanted:
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            assert name in lock, f"{name} is not locked: run `make lock` (requirements/README.md)"
            assert requirement.specifier.contains(lock[name], prereleases=True), (
                f"{name}=={lock[name]} is outside pyproject's {requirement.specifier}: run `make lock`"
            )
    # CI tests what the image runs: the same version of every package both hold
    assert {n: v for n, v in dev.items() if n in hub} == hub
    assert {n: v for n, v in dev.items() if n in build} == build
    backend = Requirement(tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"][0])
    assert backend.specifier.contains(build[canonicalize_name(backend.name)])
    for path in (REPO / "requirements").glob("*.lock"):
        entries = re.findall(r"^[A-Za-z0-9_.-]+==\S+(?: ;.*?)? \\\n((?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)",
                             path.read_text(), re.M)  # fmt: skip
        pins = re.findall(r"^[A-Za-z0-9_.-]+==", path.read_text(), re.M)
        assert len(entries) == len(pins), f"{path.name}: an entry without its hashes"


def test_no_secret_is_baked_into_the_image() -> None:
    for stage in instructions():
        for word, args in stage:
            if word in {"ENV", "ARG", "LABEL"}:
                assert not re.search(r"PASSWORD|SECRET|TOKEN|DSN|_KEY\b", args, re.I), f"{word} {args}"
    ignored = (REPO / ".dockerignore").read_text().split()
    for private in (".env", "secrets", ".git", ".venv", "var"):
        assert private in ignored


@pytest.mark.slow
def test_the_wheel_the_image_installs_holds_everything_the_hub_reads_at_run_time(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("vaka-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", *packages()], capture_output=True, text=True, check=True
    ).stdout.split()
    needed = [p for p in tracked if not p.endswith((".py", ".pyc")) or p.endswith("__init__.py")]
    missing = [p for p in needed if p not in names]
    assert not missing, f"files the hub reads at run time but the image would lack: {missing}"
    assert any(n.startswith("hub/store/migrations/") and n.endswith(".sql") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "vaka = hub.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_images_install_steps_work_outside_docker(tmp_path: Path) -> None:
    # the RUN lines test_the_image_installs_only_what_the_lock_file_pins reads, in two fresh venvs of this Python:
    # the build stage's (locked build backend, every dependency from hub.lock by hash, Vaka's wheel) and the final
    # stage's (those wheels only, offline); then the hub's command answers
    build, final, wheels = tmp_path / "build", tmp_path / "final", tmp_path / "wheels"
    for venv in (build, final):
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    steps = [
        [build / "bin/pip", "install", "--no-cache-dir", "--require-hashes", "-r", REPO / "requirements/build.lock"],
        [build / "bin/pip", "wheel", "--no-cache-dir", "--require-hashes", "--wheel-dir", wheels,
         "-r", REPO / "requirements/hub.lock"],
        [build / "bin/pip", "wheel", "--no-cache-dir", "--no-deps", "--no-build-isolation", "--wheel-dir", wheels, REPO],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run([str(a) for a in step], capture_output=True, text=True, timeout=400, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    built = sorted(wheels.glob("*.whl"))
    locked_names = {canonicalize_name(n) for n in locked(REPO / "requirements" / "hub.lock")}
    assert {canonicalize_name(w.name.split("-")[0]) for w in built} == locked_names | {"vaka"}
    install = [str(final / "bin/pip"), "install", "--no-cache-dir", "--no-index", "--no-deps", *map(str, built)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    check = subprocess.run([str(final / "bin/pip"), "check"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout
    vaka = subprocess.run([str(final / "bin/vaka"), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert vaka.returncode == 0
    assert "serve" in vaka.stdout
