"""Re-execute lesson notebooks and store their outputs the way the repository keeps them.

    python scripts/refresh_notebooks.py notebooks/03-pop3-by-hand.ipynb ...   (default: all)

After a change that alters what a lesson shows, run this, look at the diff, and commit it: the
test suite (nbval) compares every stored output with a fresh run.  Kept out of the outputs: PNG
copies of SVG figures (nbval never compares PNG, and they double the size), execution timings and
machine details in the metadata.
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

ROOT = Path(__file__).resolve().parents[1]


def refresh(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    ExecutePreprocessor(timeout=300, kernel_name="python3").preprocess(
        nb, {"metadata": {"path": str(path.parent)}})
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/svg+xml" in data:
                data.pop("image/png", None)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")


def main(argv: list[str]) -> int:
    paths = [Path(p).resolve() for p in argv] or sorted(
        Path(p) for p in glob.glob(str(ROOT / "notebooks" / "**" / "*.ipynb"), recursive=True))
    for path in paths:
        refresh(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
