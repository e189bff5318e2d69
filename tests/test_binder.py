"""Binder: the files in ``binder/`` make the lab, as mybinder.org would build it.

* the files themselves: the requirements install this repository with the lab extras, apt.txt
  brings telnet and netcat, runtime.txt names a Python the package supports;
* ``repo2docker --no-build --debug .`` (pip ``jupyter-repo2docker``; offline, no Docker needed)
  prints the Dockerfile it would build: it must have picked up ``binder/``, its requirements, its
  apt packages and its Python;
* slow: a clean virtual environment installed from ``binder/requirements.txt`` gives a working
  lab (the package, ipywidgets, matplotlib, the widgets extension in JupyterLab, ``mailproto lab``
  finding the notebooks).

Without repo2docker the second test skips, and without a package index the third one does, each
saying why; ``MAILPROTO_REQUIRE_PEERS=1`` (CI) turns those skips into failures.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
REQUIRE = os.environ.get("MAILPROTO_REQUIRE_PEERS") == "1"


def skip_or_fail(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} (MAILPROTO_REQUIRE_PEERS=1)")
    pytest.skip(reason)


def lines(name: str) -> list[str]:
    text = (BINDER / name).read_text(encoding="utf-8")
    return [x.split("#", 1)[0].strip() for x in text.splitlines() if x.split("#", 1)[0].strip()]


def runtime_version() -> tuple[int, int]:
    m = re.fullmatch(r"python-(\d+)\.(\d+)", (BINDER / "runtime.txt").read_text().strip())
    assert m, "binder/runtime.txt must be one line like python-3.11"
    return int(m.group(1)), int(m.group(2))


def clean_env() -> dict[str, str]:
    """The environment without anything that would let the venv see this one's packages."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CONDA_PREFIX", "JUPYTER_PATH",
            "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "PIP_REQUIRE_VIRTUALENV")
    return {k: v for k, v in os.environ.items() if k not in drop}


# -- the files ------------------------------------------------------------------------------
def test_binder_files_install_the_repository_with_the_lab() -> None:
    assert not (ROOT / ".binder").exists(), "repo2docker would use .binder/ and ignore binder/"
    reqs = lines("requirements.txt")
    # repo2docker does not install the repository itself when binder/ exists: this line does.
    assert any(re.fullmatch(r"(-e\s+)?\.\[lab\]", r) for r in reqs), reqs

    apt = set(lines("apt.txt"))
    assert "telnet" in apt, apt
    assert apt & {"netcat-openbsd", "netcat-traditional", "ncat"}, apt

    major, minor = runtime_version()
    pyproject = (ROOT / "pyproject.toml").read_text()  # (tomllib is Python 3.11+ only)
    lowest = re.search(r'^requires-python\s*=\s*">=\s*(\d+)\.(\d+)"', pyproject, re.M)
    assert lowest and (major, minor) >= (int(lowest.group(1)), int(lowest.group(2)))
    assert re.search(r"^lab\s*=\s*\[", pyproject, re.M), "pyproject.toml has no 'lab' extra"


# -- repo2docker's plan ---------------------------------------------------------------------
def repo2docker() -> list[str]:
    exe = shutil.which("repo2docker")
    if exe:
        return [exe]
    if importlib.util.find_spec("repo2docker") is not None:
        return [sys.executable, "-m", "repo2docker"]
    skip_or_fail("repo2docker is not installed: pip install jupyter-repo2docker")
    return []  # not reached


def test_repo2docker_plan_uses_the_binder_folder() -> None:
    result = subprocess.run([*repo2docker(), "--no-build", "--debug", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env=clean_env())
    assert result.returncode == 0, result.stderr[-3000:]
    dockerfile, log = result.stdout, result.stderr
    major, minor = runtime_version()
    assert f"python={major}.{minor}" in log, log  # runtime.txt was read
    assert "src/binder/requirements.txt" in dockerfile  # binder/, not the repository root
    apt_lines = [x for x in dockerfile.splitlines() if "apt-get install" in x]
    for package in lines("apt.txt"):
        assert any(re.search(rf"(?<![\w-]){re.escape(package)}(?![\w-])", x)
                   for x in apt_lines), (package, apt_lines)
    pip = re.search(r'pip install .*-r "?binder/requirements\.txt', dockerfile)
    assert pip, dockerfile
    # -e . needs the repository in place before that pip install runs
    copy = dockerfile.find("COPY --chown=0:0 src/ ${REPO_DIR}/")
    assert 0 <= copy < pip.start(), dockerfile


# -- a clean install ------------------------------------------------------------------------
OFFLINE = ("Could not find a version", "No matching distribution", "NewConnectionError",
           "Temporary failure in name resolution", "Network is unreachable",
           "ConnectTimeoutError", "Max retries exceeded")

CHECK_LAB = """
import mailproto.lab, ipywidgets, matplotlib
from mailproto.lab import start, check
lab = start(demo=True)
smtp = lab.smtp()
print(smtp.send("EHLO binder.example").reply)
pop = lab.pop3()
pop.send("USER username")
print(pop.send("PASS password").reply)
print(mailproto.lab.__file__)
"""


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_clean_venv_from_binder_requirements_gives_a_working_lab(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = clean_env()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
    bin_ = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_ / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
         "binder/requirements.txt"], cwd=ROOT, capture_output=True, text=True, timeout=1500,
        env=env)
    if install.returncode != 0:
        if any(s in install.stderr for s in OFFLINE):
            skip_or_fail("no package index reachable to install binder/requirements.txt: "
                         + install.stderr.strip().splitlines()[-1])
        pytest.fail(install.stderr[-4000:])

    lab = subprocess.run([str(python), "-c", CHECK_LAB], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env=env)
    assert lab.returncode == 0, lab.stderr[-3000:]
    out = lab.stdout.splitlines()
    assert out[0].startswith("250-") and out[1] == "+OK Maildrop has 7 messages (291593 bytes)"
    assert Path(out[2]).resolve().is_relative_to(ROOT)  # the editable install: this checkout

    ext = subprocess.run([str(bin_ / "jupyter"), "labextension", "list"], capture_output=True,
                         text=True, timeout=300, env=env)
    listing = re.sub(r"\x1b\[[0-9;]*m", "", ext.stdout + ext.stderr)  # no colours
    assert ext.returncode == 0, listing
    widgets = [x for x in listing.splitlines() if "@jupyter-widgets/jupyterlab-manager" in x]
    assert widgets and "enabled" in widgets[0] and "OK" in widgets[0], listing

    folder = subprocess.run([str(bin_ / "mailproto"), "lab", "--print-dir"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=env)
    assert folder.returncode == 0, folder.stderr
    assert Path(folder.stdout.strip()) == ROOT / "notebooks"
