"""``mailproto lab``: open JupyterLab on the lessons.

In a checkout of the repository the lessons are opened where they are (``notebooks/``).  When the
package was installed without the repository, the bundled copies are copied to a working folder
first (``--dir``, default ``./mailproto-lab``), never overwriting a student's work.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from importlib import resources
from pathlib import Path

FIRST_LESSON = "00-start-here.ipynb"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("lab", help="open JupyterLab on the lessons")
    p.add_argument("--dir", type=Path, default=Path("mailproto-lab"),
                   help="working folder for the lessons when not in a repository checkout")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--port", type=int, help="JupyterLab's port")
    p.add_argument("--print-dir", action="store_true",
                   help="only print the folder the lab would open, and exit")
    p.set_defaults(func=run)


def repository_notebooks() -> Path | None:
    """``notebooks/`` beside the package, when running from a checkout."""
    here = Path(__file__).resolve().parents[2] / "notebooks"
    return here if (here / FIRST_LESSON).exists() or any(here.glob("*.ipynb")) else None


def bundled_notebooks() -> list[tuple[str, bytes]]:
    root = resources.files("mailproto") / "notebooks"
    if not root.is_dir():
        return []
    return sorted((entry.name, entry.read_bytes()) for entry in root.iterdir()
                  if entry.name.endswith(".ipynb"))


def prepare(workdir: Path) -> Path:
    """The folder to open: the checkout's notebooks, or a working copy of the bundled ones."""
    repo = repository_notebooks()
    if repo is not None:
        return repo
    workdir.mkdir(parents=True, exist_ok=True)
    for name, data in bundled_notebooks():
        target = workdir / name
        if not target.exists():  # never overwrite a student's work
            target.write_bytes(data)
    return workdir


def run(args: argparse.Namespace) -> int:
    folder = prepare(args.dir)
    if args.print_dir:
        print(folder)
        return 0
    jupyter = shutil.which("jupyter", path=os.path.dirname(sys.executable) + os.pathsep
                           + os.environ.get("PATH", ""))
    if jupyter is None:
        print("mailproto lab: JupyterLab is not installed; pip install 'mailproto[lab]'",
              file=sys.stderr)
        return 2
    argv = [jupyter, "lab", f"--ServerApp.root_dir={folder}"]
    first = folder / FIRST_LESSON
    if first.exists():
        argv.append(str(first))
    if args.no_browser:
        argv.append("--no-browser")
    if args.port:
        argv.append(f"--port={args.port}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    os.execv(jupyter, argv)
    return 0  # not reached
