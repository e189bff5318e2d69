"""The lab in a real browser: JupyterLab and the widgets, end to end in headless Chromium.

For every lesson (``notebooks/*.ipynb``, found when the tests are collected) and for the fixture
``widgets_smoke.ipynb``: open it in JupyterLab, wait for an idle kernel, Run All, and check that
no cell failed, that every widget rendered through the widget front end, that each stepper's
Next ▶ moves the transcript and the diagram's highlight, and that typing ``NOOP`` and Enter in
each console shows the server's reply.  The notebooks run as copies in a temporary folder: the
lessons in ``notebooks/`` are never written to.

Chromium (``/usr/bin/chromium``, Debian's) and the ``playwright`` module missing: skipped with
the reason, or failed when ``MAILPROTO_REQUIRE_BROWSER=1`` (CI).  Screenshots land in
``test-artifacts/browser/``.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import labdriver
from .labdriver import (
    Chromium,
    JupyterLabServer,
    NotebookPage,
    check_console,
    check_stepper,
    lab_and_browser,
    prepare_notebook,
    require_chromium,
    require_modules,
)

REPO = Path(__file__).resolve().parents[2]
LESSONS = sorted((REPO / "notebooks").glob("*.ipynb"))
SMOKE = Path(__file__).with_name("widgets_smoke.ipynb")
ARTIFACTS = REPO / "test-artifacts" / "browser"

#: Appended to a copy of the smoke notebook: the stepper's Next and the console's Enter lose
#: their Python handlers, while everything still renders.  The checks must notice.
SABOTAGE = (
    "# Test-only sabotage: Next and Enter reach the kernel but nothing answers them.\n"
    "stepper.next_button._click_handlers.callbacks.clear()\n"
    "console.text._msg_callbacks.callbacks.clear()"
)

SMOKE_PATH = f"fixtures/{SMOKE.name}"
SABOTAGED_PATH = "fixtures/widgets_sabotaged.ipynb"
#: The smoke notebook in a page that may not load the widget extension's code.
NO_FRONTEND_PATH = "fixtures/widgets_without_frontend.ipynb"
BLOCKED = {NO_FRONTEND_PATH: ("**/lab/extensions/@jupyter-widgets/jupyterlab-manager/**",)}
NOTEBOOKS = [pytest.param(SMOKE_PATH, id=SMOKE.stem)] + [
    pytest.param(f"notebooks/{p.name}", id=p.stem) for p in LESSONS]


@dataclass
class Lab:
    """The server and the browser, and notebooks opened ahead of time: while one notebook is
    checked, the next one loads, starts its kernel and runs (two at a time: 2 CPUs in CI)."""

    server: JupyterLabServer
    browser: Chromium
    unreadable: dict[str, str]
    order: list[str]  # the notebooks the selected tests will open, in their order
    ahead: int = 1
    _pages: dict[str, NotebookPage] = field(default_factory=dict)

    def open(self, path: str) -> NotebookPage:
        if path in self.unreadable:
            if not (REPO / path).exists():
                pytest.skip(f"{path} was removed after the tests were collected")
            raise AssertionError(f"{path} cannot be read: {self.unreadable[path]}")
        page = self._pages.pop(path, None) or self._start(path)
        if path in self.order:
            at = self.order.index(path)
            for following in self.order[at + 1:at + 1 + self.ahead]:
                if following not in self._pages and following not in self.unreadable:
                    self._pages[following] = self._start(following)
        return page

    def _start(self, path: str) -> NotebookPage:
        """Open ``path`` and have the page Run All once its kernel is idle."""
        return NotebookPage.start(self.browser.context, self.server, path, run=True,
                                  block=BLOCKED.get(path, ()))

    def close(self) -> None:
        for page in self._pages.values():
            page.close()
        self._pages.clear()


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Lab]:
    require_modules(("playwright", "playwright"), ("jupyterlab", "jupyterlab"),
                    ("ipywidgets", "ipywidgets"), ("jupyterlab_widgets", "jupyterlab_widgets"),
                    ("nbformat", "nbformat"), ("matplotlib", "matplotlib"))
    chromium = require_chromium()
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "root"
    lessons = REPO / "notebooks"
    if lessons.is_dir():  # what the lessons may read beside them, then the lessons themselves
        shutil.copytree(lessons, root / "notebooks",
                        ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    broken = {}
    for nb in LESSONS:  # lessons are being written: one may vanish or be half saved
        try:
            prepare_notebook(nb, root / "notebooks" / nb.name)
        except Exception as exc:  # noqa: BLE001 - reported by that notebook's test
            broken[f"notebooks/{nb.name}"] = f"{type(exc).__name__}: {exc}"
    prepare_notebook(SMOKE, root / SMOKE_PATH)
    prepare_notebook(SMOKE, root / SABOTAGED_PATH, (SABOTAGE,))
    prepare_notebook(SMOKE, root / NO_FRONTEND_PATH)
    # This module's notebooks only: other tests in the session may use a fixture named "lab".
    order = [item.callspec.params["path"] for item in request.session.items
             if "lab" in getattr(item, "fixturenames", ()) and hasattr(item, "callspec")
             and "path" in item.callspec.params and item.path == request.path]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with lab_and_browser(root, base / "home", chromium) as (server, browser):
        lab = Lab(server, browser, broken, order)
        try:
            yield lab
        finally:
            lab.close()
            shutil.copyfile(server.log_path, ARTIFACTS / "jupyter-lab.log")


def _artifact(path: str, what: str) -> Path:
    return ARTIFACTS / f"{Path(path).stem}-{what}.png"


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("path", NOTEBOOKS)
def test_notebook_runs_and_its_widgets_work(lab: Lab, path: str) -> None:
    with _opened(lab, path) as page:
        page.run_all()
        t0 = time.monotonic()
        page.check_outputs()
        widgets = page.check_widgets()
        steppers, consoles = page.steppers(), page.consoles()
        stepped = [check_stepper(steppers.nth(i)) for i in range(steppers.count())]
        typed = [check_console(consoles.nth(i), settle=page.settle)
                 for i in range(consoles.count())]
        page.check_outputs()  # clicking and typing raised nothing either
        page.check_widgets()
        page.timings["checks"] = time.monotonic() - t0
        print(f"{path}: {widgets} widget(s); steppers {stepped}; consoles {typed}; "
              f"console errors {page.console_errors}")
        if path == SMOKE_PATH:  # the fixture: each check had something to act on
            views = page.transcript_views().count()
            assert (widgets, len(stepped), len(typed), views) == (2, 1, 1, 1)
            assert (stepped[0]["from"], stepped[0]["to"]) == (["CONNECTED"], ["GREETED"])
            assert stepped[0]["line"].startswith("250"), stepped[0]
            assert typed[0]["reply"].startswith("250"), typed[0]
            # The main views, for people (the best are copied to docs/screenshots/).
            t0 = time.monotonic()
            page.screenshot(consoles.first, ARTIFACTS / "console.png")
            page.screenshot(page.transcript_views().first, ARTIFACTS / "transcript.png")
            page.screenshot(steppers.first, ARTIFACTS / "stepper.png")
            page.page.evaluate("() => window.jupyterapp.commands.execute("
                               "'application:toggle-left-area')")  # no file browser
            steppers.first.evaluate("(n) => n.closest('.jp-Cell').scrollIntoView()")
            page.page.wait_for_timeout(300)  # the notebook re-lays out, wider
            page.page.screenshot(path=str(ARTIFACTS / "jupyterlab.png"))
            page.timings["screenshots"] = time.monotonic() - t0
        print(f"{path}: seconds " + ", ".join(f"{k} {v:.1f}" for k, v in page.timings.items()))


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("path", [SABOTAGED_PATH], ids=["widgets_sabotaged"])
def test_the_checks_catch_disconnected_widgets(lab: Lab, path: str) -> None:
    """A stepper whose Next does nothing, and a console deaf to Enter, render fine, but the
    stepper and console checks fail; Back, still wired, works (the page itself is alive)."""
    with _opened(lab, path) as page:
        page.run_all()
        page.check_outputs()
        assert page.check_widgets() == 2
        stepper, console = page.steppers().first, page.consoles().first
        with pytest.raises(AssertionError, match=r"click 1 on Next ▶ did not add a transcript"):
            check_stepper(stepper, timeout=2)
        with pytest.raises(AssertionError, match=r"typing 'NOOP' and Enter did not show"):
            check_console(console, timeout=2, settle=page.settle)
        before = stepper.locator(".mailproto-transcript div[data-step]").count()
        stepper.locator("button", has_text="Back").click()
        expect_count(stepper.locator(".mailproto-transcript div[data-step]"), before - 1)


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("path", [NO_FRONTEND_PATH], ids=["widgets_without_frontend"])
def test_the_checks_catch_widgets_that_do_not_render(lab: Lab, path: str) -> None:
    """Without the widget extension's code (as when its labextension is hidden), the notebook
    runs and shows each widget's static copy, but the widget check fails."""
    with _opened(lab, path) as page:
        page.run_all()
        page.check_outputs()
        with pytest.raises(AssertionError, match=r"2 widget output\(s\) not shown as widgets"):
            page.check_widgets(timeout=3)
        assert page.steppers().count() == page.consoles().count() == 0


@contextlib.contextmanager
def _opened(lab: Lab, path: str) -> Iterator[NotebookPage]:
    """The notebook open in the browser; a screenshot and the console log if the test fails."""
    page = lab.open(path)
    try:
        yield page
    except BaseException:
        _failure_artifacts(page, path)
        raise
    finally:
        page.close()


def expect_count(locator: Any, n: int, timeout: float = 10.0) -> None:
    from playwright.sync_api import expect

    expect(locator).to_have_count(n, timeout=timeout * 1000)


def _failure_artifacts(page: NotebookPage, path: str) -> None:
    try:
        page.page.screenshot(path=str(_artifact(path, "FAILED")))
        (ARTIFACTS / f"{Path(path).stem}-console.txt").write_text("\n".join(page.console_errors))
    except Exception as exc:  # noqa: BLE001 - the original failure matters more
        print(f"could not save failure artifacts: {exc}")


# --------------------------------------------------------------------------------------------
# Without a browser: the fixture notebook and the sabotage do what the browser tests assume.


def _run_cells(nb_path: Path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipywidgets")
    pytest.importorskip("matplotlib")
    nb = nbformat.read(nb_path, as_version=4)
    namespace: dict[str, Any] = {}
    for source in [c.source for c in nb.cells if c.cell_type == "code"] + list(extra):
        exec(compile(source, str(nb_path), "exec"), namespace)  # noqa: S102 - our fixture
    return namespace


def test_smoke_notebook_without_a_browser() -> None:
    ns = _run_cells(SMOKE)
    stepper, console = ns["stepper"], ns["console"]
    assert "mailproto-stepper" in stepper._dom_classes
    assert "mailproto-console" in console._dom_classes
    svg = stepper.diagram_html.value
    stepper.next_button.click()
    assert stepper.model.index == 3 and stepper.diagram_html.value != svg
    console.text.value = "NOOP"
    _press_enter(console.text)
    assert re.search(r">250 2\.0\.0 Ok<", console.transcript_html.value)


def test_sabotage_disconnects_next_and_enter_without_a_browser() -> None:
    ns = _run_cells(SMOKE, (SABOTAGE,))
    stepper, console = ns["stepper"], ns["console"]
    html = stepper.transcript_html.value
    stepper.next_button.click()
    assert stepper.model.index == 2 and stepper.transcript_html.value == html
    console.text.value = "NOOP"
    _press_enter(console.text)
    assert "NOOP" not in console.transcript_html.value


def _press_enter(text: Any) -> None:
    """The message the front end sends when Enter is pressed in a Text widget."""
    text._handle_msg({"content": {"data": {"method": "custom", "content": {"event": "submit"}}},
                      "buffers": []})


# --------------------------------------------------------------------------------------------
# Without a browser: a missing Chromium or module skips, or fails when CI requires the browser.


@pytest.mark.parametrize("required", [False, True])
def test_missing_chromium_skips_or_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         required: bool) -> None:
    monkeypatch.setattr(labdriver, "DEFAULT_CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(labdriver.CHROMIUM_ENV, raising=False)
    _expect_missing(monkeypatch, required, "Chromium is not installed",
                    labdriver.require_chromium)


@pytest.mark.parametrize("required", [False, True])
def test_missing_module_skips_or_fails(monkeypatch: pytest.MonkeyPatch, required: bool) -> None:
    _expect_missing(monkeypatch, required, r"not installed: no-such-pkg",
                    lambda: require_modules(("mailproto_no_such_module", "no-such-pkg")))


def _expect_missing(monkeypatch: pytest.MonkeyPatch, required: bool, reason: str,
                    call: Any) -> None:
    if required:
        monkeypatch.setenv(labdriver.REQUIRE_ENV, "1")
    else:
        monkeypatch.delenv(labdriver.REQUIRE_ENV, raising=False)
    outcome = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(outcome, match=reason):
        call()
