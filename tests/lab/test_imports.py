"""``import mailproto`` stays light; the pure renderers need neither ipywidgets nor matplotlib."""

from __future__ import annotations

import subprocess
import sys


def _loaded(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join("
                          "m for m in ('ipywidgets', 'matplotlib') if m in sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_mailproto_is_light() -> None:
    assert _loaded("import mailproto, mailproto.smtp.server, mailproto.pop3.server") == set()


def test_lab_package_and_pure_renderers_are_light() -> None:
    assert _loaded("import mailproto.lab") == set()
    assert _loaded("from mailproto.lab import render_transcript, state_path\n"
                   "import mailproto.lab.annotate") == set()


def test_lab_names_load_on_use() -> None:
    assert _loaded("from mailproto.lab import Stepper") == {"ipywidgets", "matplotlib"}
