"""JupyterLab in headless Chromium, driven by Playwright: start, open, run all, check, clean up.

Follows /work/shared/docs/JUPYTER-TESTING.md ("the doc" below); comments name the gotcha each
piece works around.  Nothing here knows about particular lessons: a notebook is opened, run,
and its widgets are found by the CSS hooks ``mailproto-stepper`` / ``mailproto-console`` (one
``add_class`` call each in ``mailproto/lab/stepper.py`` and ``console.py``).

* :class:`JupyterLabServer` runs ``jupyter lab`` on a free loopback port with no token and no
  password, every Jupyter folder it writes to (config, data, runtime, settings, workspaces,
  IPython) throwaway, and stops it with its kernels, which run in sessions of their own.
* :class:`Chromium` launches Debian's Chromium through Playwright and makes sure nothing it
  started survives.
* :class:`NotebookPage` opens one notebook in its own browser page and offers the checks
  (:meth:`~NotebookPage.run_all`, :meth:`~NotebookPage.check_outputs`,
  :meth:`~NotebookPage.check_widgets`, :func:`check_stepper`, :func:`check_console`); each
  raises AssertionError with what it saw.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REQUIRE_ENV = "MAILPROTO_REQUIRE_BROWSER"
CHROMIUM_ENV = "MAILPROTO_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"

#: The doc's flags for Debian's Chromium under Playwright (headless is Playwright's default).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

#: Console messages that betray a broken widget front end (the doc: check the error widget
#: *and* the console).
WIDGET_ERROR = re.compile(r"widget|jupyter-widgets|ipywidgets|Could not create|"
                          r"Class \S+ not found|model not found", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# Requirements: skip with the reason, or fail when CI says the browser must be there.


def browser_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def missing(reason: str) -> None:
    if browser_required():
        pytest.fail(f"{reason} [{REQUIRE_ENV}=1]", pytrace=False)
    pytest.skip(reason)


def require_chromium() -> str:
    """Path of Chromium (``$MAILPROTO_CHROMIUM``, else /usr/bin/chromium, else on PATH)."""
    candidates = [os.environ.get(CHROMIUM_ENV, ""), DEFAULT_CHROMIUM,
                  shutil.which("chromium") or ""]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    missing(f"Chromium is not installed (apt-get install chromium, or set {CHROMIUM_ENV})")
    raise AssertionError("unreachable")


def require_modules(*pairs: tuple[str, str]) -> None:
    """Skip (or fail under CI) unless each (module, pip package) is importable."""
    import importlib.util

    def present(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package missing, or a blocked module
            return False

    absent = [pkg for mod, pkg in pairs if not present(mod)]
    if absent:
        missing(f"Python package(s) not installed: {', '.join(absent)} "
                f"(pip install {' '.join(absent)}; never `playwright install`: the test drives "
                f"Debian's Chromium)")


# --------------------------------------------------------------------------------------------
# Processes: everything we start, and only that, is stopped at the end.


def _proc_stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, pgid, start time) of a live process, from /proc; None if gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[2]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live descendant of ``root`` (a /proc snapshot)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry))
                starts[int(entry)] = stat[2]
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = starts[child]
                todo.append(child)
    return found


def alive(procs: dict[int, int]) -> dict[int, int]:
    """The processes of a snapshot still running (same pid *and* start time: no reuse)."""
    still = {}
    for pid, start in procs.items():
        stat = _proc_stat(pid)
        if stat is not None and stat[2] == start:
            still[pid] = start
    return still


def reap(procs: dict[int, int], grace: float = 5.0) -> dict[int, int]:
    """SIGTERM what is left of ``procs``, SIGKILL after ``grace`` s; return what survived."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        left = alive(procs)
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while alive(procs) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0] > 0:  # our own zombies, if any
                    pass
            time.sleep(0.05)
    return alive(procs)


def processes_mentioning(text: str) -> dict[int, int]:
    """pid -> start time of every live process whose command line contains ``text``."""
    found = {}
    needle = text.encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            stat = _proc_stat(int(entry))
            if needle in cmdline and stat is not None:
                found[int(entry)] = stat[2]
    return found


def _die_with_parent() -> None:
    """In the child before exec: kill it if pytest dies without cleaning up (SIGKILL, a
    crash).  Its kernels then stop by themselves (ipykernel polls its parent, JPY_PARENT_PID),
    and Playwright's driver, reading our pipe, ends Chromium.  SIGKILL, not SIGTERM: a server
    told to stop just as its browser vanished was seen to hang in its shutdown."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------------
# JupyterLab

#: User settings written into the throwaway settings folder.
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    # Every cell in the DOM: with windowing ("full") cells out of view are not rendered, so
    # their widgets could not be checked or clicked.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # Never write back into the copies (and never anywhere near the lesson sources).
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # No "get Jupyter news?" toast over the notebook, no requests to the Internet.
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
}

#: Server options (a config file in the throwaway JUPYTER_CONFIG_DIR).
SERVER_CONFIG: dict[str, Any] = {
    "ServerApp": {"password": "", "open_browser": False},
    "IdentityProvider": {"token": ""},
    "LabApp": {"expose_app_in_browser": True,  # window.jupyterapp: commands and models
               "news_url": None,
               "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"},
    "LanguageServerManager": {"autodetect": False},
}


class JupyterLabServer:
    """``jupyter lab`` serving ``root`` on 127.0.0.1, with throwaway Jupyter folders in ``home``.

    The widget extension lives in ``sys.prefix/share/jupyter/labextensions``; moving
    JUPYTER_DATA_DIR (the *user* data folder) does not hide it, and the browser checks that
    widgets really render.
    """

    def __init__(self, root: Path, home: Path, *, start_timeout: float = 60.0) -> None:
        self.root = root
        self.home = home
        self.start_timeout = start_timeout
        self.port = 0
        self.log_path = home / "jupyter-lab.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._env: dict[str, str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _prepare(self) -> dict[str, str]:
        dirs = {name: self.home / name for name in
                ("config", "data", "runtime", "settings", "workspaces", "ipython")}
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        for plugin, values in LAB_SETTINGS.items():
            target = dirs["settings"] / f"{plugin}.jupyterlab-settings"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(values))
        config = json.loads(json.dumps(SERVER_CONFIG))
        config["LabApp"].update(user_settings_dir=str(dirs["settings"]),
                                workspaces_dir=str(dirs["workspaces"]))
        (dirs["config"] / "jupyter_server_config.json").write_text(json.dumps(config, indent=1))
        env = dict(os.environ)
        for var in ("JUPYTER_TOKEN", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH"):
            env.pop(var, None)
        repo = str(Path(__file__).resolve().parents[2])
        env.update(
            JUPYTER_CONFIG_DIR=str(dirs["config"]),
            JUPYTER_DATA_DIR=str(dirs["data"]),
            JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            IPYTHONDIR=str(dirs["ipython"]),
            JUPYTER_PLATFORM_DIRS="0",
            # The kernels import this checkout even where it is not pip-installed.
            PYTHONPATH=os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p),
            PYDEVD_DISABLE_FILE_VALIDATION="1",
        )
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                    "all_proxy"):
            env.pop(var, None)
        return env

    def spawn(self) -> None:
        """Start ``jupyter lab`` without waiting for it (see :meth:`wait_ready`)."""
        if self._env is None:
            self._env = self._prepare()
        self.port = free_port()
        argv = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1",
                "--port", str(self.port), "--port-retries", "0",
                "--IdentityProvider.token=", "--ServerApp.password=",
                f"--ServerApp.root_dir={self.root}"]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(argv, cwd=self.root, env=self._env,
                                      stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                      start_new_session=True)  # its own process group

    def wait_ready(self) -> JupyterLabServer:
        """Wait until the server answers; start it again (on another port) if it died, as it
        does when another process took the free port first."""
        errors = []
        for _attempt in range(3):
            if self._proc is None:
                self.spawn()
            try:
                self._wait_ready()
                return self
            except _NotReady as exc:
                errors.append(str(exc))
                self.stop()
        raise RuntimeError("jupyter lab did not start:\n" + "\n".join(errors) + "\n"
                           + self.log_tail())

    def start(self) -> JupyterLabServer:
        self.spawn()
        return self.wait_ready()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise _NotReady(f"exited with {self._proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise _NotReady(f"no answer on port {self.port} after {self.start_timeout} s")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "--- jupyter lab log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> dict[int, int]:
        """Stop the server and its kernels; return processes that survived even SIGKILL.

        Kernels run in sessions of their own (jupyter_client starts them so), so a signal to
        the server's process group would miss them: the server's descendants are listed first
        and each is made sure of after the server's own clean shutdown (SIGTERM stops its
        kernels), which is given a few seconds.
        """
        proc, self._proc = self._proc, None
        survivors: dict[int, int] = {}
        if proc is not None:
            family = {proc.pid: _proc_stat(proc.pid)[2]} if _proc_stat(proc.pid) else {}
            family.update(descendants(proc.pid))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=8)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            survivors = reap(family, grace=3.0)
        if self._log is not None:
            self._log.close()
            self._log = None
        return survivors

    def __enter__(self) -> JupyterLabServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _NotReady(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Chromium through Playwright


class Chromium:
    """Playwright's sync API with Debian's Chromium; ``close()`` leaves no process behind."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self._pw: Any = None
        self.browser: Any = None
        #: One context for every page: JupyterLab's assets are fetched once (each notebook
        #: still gets a page and a JupyterLab workspace of its own).
        self.context: Any = None
        self._family: dict[int, int] = {}

    def start(self) -> Chromium:
        from playwright.sync_api import sync_playwright

        before = descendants(os.getpid())
        self._pw = sync_playwright().start()
        try:
            self.browser = self._pw.chromium.launch(executable_path=self.executable,
                                                    args=CHROMIUM_ARGS, timeout=60_000)
            self.context = self.browser.new_context(viewport={"width": 1280, "height": 1200})
            self.context.set_default_timeout(15_000)  # a click on a hidden button: 15 s, not 30
        finally:
            # The Playwright driver (node) and Chromium's processes: what appeared just now.
            self._family = {pid: start for pid, start in descendants(os.getpid()).items()
                            if pid not in before}
        return self

    def close(self) -> dict[int, int]:
        with contextlib.suppress(Exception):
            if self.browser is not None:
                self.browser.close()
        with contextlib.suppress(Exception):
            if self._pw is not None:
                self._pw.stop()
        self.browser = self._pw = self.context = None
        # Chromium forks helpers after launch: take them in too before reaping.
        family = dict(self._family)
        for pid in list(alive(family)):
            family.update(descendants(pid))
        return reap(family, grace=3.0)


# --------------------------------------------------------------------------------------------
# One notebook in one page

#: Installed in every page: small accessors over window.jupyterapp (expose_app_in_browser).
PAGE_HELPERS = (Path(__file__).with_name("page_helpers.js")).read_text()


@dataclass
class Snapshot:
    """What a stepper or console shows; ``transcript`` and ``svg`` are fingerprints."""

    transcript: str | None
    svg: str | None
    steps: list[dict[str, str]]
    hot: list[str]
    states: list[str]
    text: str

    @property
    def lines(self) -> list[str]:
        return [f"{s['dir']}: {s['line']}" for s in self.steps]


@dataclass
class NotebookPage:
    """A notebook open in its own Chromium page (a fresh browser context and workspace)."""

    server: JupyterLabServer
    path: str  # relative to the server root
    page: Any
    console_errors: list[str] = field(default_factory=list)
    #: seconds spent in each phase (printed by the tests: the budget is 3 minutes in all)
    timings: dict[str, float] = field(default_factory=dict)
    _run_started: float | None = None

    @classmethod
    def start(cls, context: Any, server: JupyterLabServer, path: str,
              timeout: float = 60.0, run: bool = False, block: tuple[str, ...] = ()
              ) -> NotebookPage:
        """Open the notebook in a new page; JupyterLab goes on loading it and starting its
        kernel while the caller does something else (see :meth:`wait_for_idle_kernel`).
        With ``run``, the page itself runs all cells once the kernel is idle.  ``block``:
        URL patterns this page may not load (to test the checks on a broken front end)."""
        t0 = time.monotonic()
        page = context.new_page()
        nb = cls(server, path, page)
        for pattern in block:
            page.route(pattern, lambda route: route.abort())
        page.on("console", nb._on_console)
        page.on("pageerror", lambda exc: nb.console_errors.append(f"pageerror: {exc}"))
        page.add_init_script(PAGE_HELPERS)
        workspace = re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-")  # nothing else restored
        page.goto(f"{server.url}/lab/workspaces/{workspace}/tree/{path}",
                  wait_until="domcontentloaded", timeout=timeout * 1000)
        if run:
            page.evaluate("([p, ms]) => window.__mailproto.autoRun(p, ms)",
                          [path, int(timeout * 1000)])
            nb._run_started = time.monotonic()
        nb.timings["goto"] = time.monotonic() - t0
        return nb

    @classmethod
    def open(cls, context: Any, server: JupyterLabServer, path: str,
             timeout: float = 60.0) -> NotebookPage:
        nb = cls.start(context, server, path, timeout)
        nb.wait_for_idle_kernel(timeout)
        return nb

    def _on_console(self, msg: Any) -> None:
        if msg.type == "error":
            self.console_errors.append(msg.text)

    def js(self, method: str, *args: Any) -> Any:
        return self.page.evaluate(f"(a) => window.__mailproto.{method}(...a)", list(args))

    def wait_for_idle_kernel(self, timeout: float) -> None:
        """The doc: wait for an idle kernel before Run All."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        state = "?"
        while time.monotonic() < deadline:
            state = self.page.evaluate(
                "(p) => window.__mailproto ? window.__mailproto.kernel(p) : 'no helpers'",
                self.path)
            if state == "connected/idle":
                self.timings["kernel wait"] = time.monotonic() - t0
                return
            time.sleep(0.25)
        raise AssertionError(f"{self.path}: kernel not idle after {timeout} s (last: {state})\n"
                             + self.server.log_tail())

    def run_all(self, timeout: float = 90.0) -> list[dict[str, Any]]:
        """Run All (unless the page was opened with ``run``) without waiting on the call;
        poll until every code cell ran and the kernel is idle (twice in a row), or fail early
        on an error output."""
        t0 = time.monotonic()
        if self._run_started is None:
            self.wait_for_idle_kernel(60)
            self.js("runAll", self.path)
            self._run_started = time.monotonic()
        deadline = self._run_started + timeout
        settled = 0
        idle_since: float | None = None
        cells: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            time.sleep(0.25)
            started = self.page.evaluate("() => window.__mailproto.runAllResult")
            if started is None:  # the page reloaded after autoRun was set: ask again
                self.wait_for_idle_kernel(60)
                self.js("runAll", self.path)
                continue
            if started.startswith("error"):
                raise AssertionError(f"{self.path}: run all: {started}\n"
                                     + self.server.log_tail())
            if started.startswith("waiting"):
                continue
            cells = self.js("cells", self.path)
            errors = error_outputs(cells)
            if errors:
                raise AssertionError(f"{self.path}: a cell failed:\n{errors[0]}")
            kernel = self.js("kernel", self.path)
            pending = [c for c in cells if not c["blank"] and
                       (c["count"] is None or c["state"] == "running")]
            if kernel == "connected/idle" and not pending:
                settled += 1
                if settled >= 2:
                    self.timings["run all (waited)"] = time.monotonic() - t0
                    self.timings["run all (since opened)"] = time.monotonic() - self._run_started
                    return cells
                continue
            settled = 0
            # Cells neither run nor queued ([*]) while the kernel is idle: the run stopped.
            # (The kernel's status alone says little: ipykernel 7 reports "idle" after a
            # control or comm message even while a cell runs.)
            stuck = kernel == "connected/idle" and pending and not any(
                c["state"] == "running" for c in cells)
            if stuck:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 5:
                    raise AssertionError(
                        f"{self.path}: the kernel is idle but cells did not run: "
                        f"{[c['index'] for c in pending]}\n{_cells_digest(cells)}")
            else:
                idle_since = None
        raise AssertionError(f"{self.path}: run all did not finish in {timeout} s "
                             f"(kernel {self.js('kernel', self.path)})\n{_cells_digest(cells)}")

    def settle(self, quiet: float = 0.5, timeout: float = 15.0) -> None:
        """Wait until the kernel has been idle for ``quiet`` seconds (widget messages done)."""
        deadline = time.monotonic() + timeout
        since: float | None = None
        while time.monotonic() < deadline:
            if self.js("kernel", self.path) == "connected/idle":
                since = since or time.monotonic()
                if time.monotonic() - since >= quiet:
                    return
            else:
                since = None
            time.sleep(0.05)
        raise AssertionError(f"{self.path}: the kernel did not settle in {timeout} s")

    def check_outputs(self) -> None:
        """No error output anywhere (error, or a traceback on stderr), tags aside."""
        errors = error_outputs(self.js("cells", self.path))
        assert not errors, f"{self.path}: error output(s):\n" + "\n\n".join(errors)

    def check_widgets(self, timeout: float = 30.0) -> int:
        """Every widget output rendered by the widget front end (not as its text/html
        fallback, not as an error widget); return how many there are."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.js("widgetViews", self.path)
            pending = [v for v in status["views"] if v["shownAs"] != "widget" or v["error"]]
            if status["errors"] or not pending:
                break
            time.sleep(0.25)
        assert not status["errors"], f"{self.path}: widget error(s): {status['errors']}"
        bad = [v for v in status["views"] if v["shownAs"] != "widget" or v["error"]]
        assert not bad, (
            f"{self.path}: {len(bad)} widget output(s) not shown as widgets (is the "
            f"@jupyter-widgets/jupyterlab-manager extension missing?): {bad}")
        widget_errors = [e for e in self.console_errors if WIDGET_ERROR.search(e)]
        assert not widget_errors, f"{self.path}: widget errors in the console: {widget_errors}"
        return len(status["views"])

    def steppers(self) -> Any:
        return self.page.locator(".jp-Notebook .mailproto-stepper.jupyter-widgets")

    def consoles(self) -> Any:
        return self.page.locator(".jp-Notebook .mailproto-console.jupyter-widgets")

    def transcript_views(self) -> Any:
        return self.page.locator(
            '.jp-Notebook .jp-OutputArea-output[data-mime-type="text/html"] .mailproto-transcript')

    def screenshot(self, locator: Any, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        locator.scroll_into_view_if_needed()
        self.page.wait_for_timeout(150)  # let the scroll and any transition settle
        locator.screenshot(path=str(path), animations="disabled")
        return path

    def close(self) -> None:
        """Shut the notebook's kernel down (less load for the next one) and close the page."""
        with contextlib.suppress(Exception):
            self.page.evaluate(
                "async (p) => { const w = window.__mailproto.panel(p); if (!w) return;"
                " await Promise.race([w.sessionContext.shutdown(),"
                " new Promise((r) => setTimeout(r, 5000))]); }", self.path)
        with contextlib.suppress(Exception):
            self.page.close()


def error_outputs(cells: list[dict[str, Any]]) -> list[str]:
    """Error outputs (and tracebacks printed on stderr) of cells not tagged raises-exception."""
    found = []
    for c in cells:
        if "raises-exception" in c["tags"]:
            continue
        for o in c["outputs"]:
            if o["type"] == "error":
                found.append(f"cell {c['index']} ({c['source'][:80]!r}): {o['ename']}: "
                             f"{o['evalue']}\n{_strip_ansi(o['traceback'])[-3000:]}")
            elif o["type"] == "stream" and o["name"] == "stderr" and "Traceback" in o["text"]:
                found.append(f"cell {c['index']} ({c['source'][:80]!r}) stderr:\n"
                             f"{_strip_ansi(o['text'])[-3000:]}")
        if not any(o["type"] == "error" for o in c["outputs"]):
            for shown in c.get("stderr", []):
                if "Traceback" in shown or _ENAME.search(shown):
                    found.append(f"cell {c['index']} ({c['source'][:80]!r}) shows on the "
                                 f"page:\n{shown}")
    return found


#: The last line of a traceback as the page shows it: "ValueError: ...".
_ENAME = re.compile(r"^\w*(Error|Exception)\b.*$", re.MULTILINE)


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def _cells_digest(cells: list[dict[str, Any]]) -> str:
    return "\n".join(f"  cell {c['index']}: count={c['count']} state={c['state']} "
                     f"{c['source'][:60]!r}" for c in cells)


# --------------------------------------------------------------------------------------------
# The stepper and the console, clicked and typed at


def snapshot(root: Any) -> Snapshot:
    from mailproto.lab import palette

    return Snapshot(**root.evaluate("(n, fill) => window.__mailproto.snapshot(n, fill)",
                                    palette.CURRENT_FILL.lower()))


def _wait_for(root: Any, changed: Any, timeout: float, what: str, before: Snapshot
              ) -> Snapshot:
    deadline = time.monotonic() + timeout
    now = before
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = snapshot(root)
        if changed(now):
            return now
    raise AssertionError(f"{what} within {timeout} s; the widget still shows:\n"
                         + "\n".join(now.lines[-6:]) + f"\nhighlighted state: {now.hot}")


def check_stepper(root: Any, *, timeout: float = 10.0, max_clicks: int = 4) -> dict[str, Any]:
    """Next ▶ moves the transcript one line on, and within a few lines (a client line leaves
    the state as it was) the diagram's highlighted state moves too."""
    root.scroll_into_view_if_needed()
    next_button = root.locator("button", has_text="Next")
    back_button = root.locator("button", has_text="Back")
    assert next_button.count() == 1, "no Next button in the stepper"
    start = snapshot(root)
    assert start.svg is not None, "the stepper shows no state diagram"
    assert start.transcript is not None, "the stepper shows no transcript"
    backs = 0
    while next_button.is_disabled() and backs < max_clicks:  # at the end: make room first
        assert back_button.is_enabled(), "both Next and Back are disabled"
        prev = snapshot(root)
        back_button.click()
        _wait_for(root, lambda s, p=prev: len(s.steps) < len(p.steps), timeout,
                  "clicking ◀ Back did not shorten the transcript", prev)
        backs += 1
    before = prev = snapshot(root)
    for click in range(1, max_clicks + 1):
        if next_button.is_disabled():
            break
        next_button.click()
        prev = _wait_for(
            root, lambda s, p=prev: len(s.steps) == len(p.steps) + 1 and s.transcript !=
            p.transcript, timeout, f"click {click} on Next ▶ did not add a transcript line",
            prev)
        if prev.hot != before.hot:
            assert prev.svg != before.svg, "the highlight moved but the SVG did not change"
            return {"clicks": click, "from": before.hot, "to": prev.hot,
                    "line": prev.steps[-1]["line"]}
    raise AssertionError(f"the diagram's highlighted state stayed {before.hot} after "
                         f"{max_clicks} clicks on Next ▶")


def check_console(root: Any, line: str = "NOOP", *, timeout: float = 10.0,
                  settle: Any = None) -> dict[str, Any]:
    """Typing ``line`` and Enter shows it in the transcript, and the server's answer after it:
    ``250`` for SMTP, ``+OK``/``-ERR`` for POP3.

    ``settle()`` is called between typing and Enter (:meth:`NotebookPage.settle`): ipywidgets
    holds a value update back while an earlier one is unanswered, but sends the Enter event at
    once, so the kernel could see Enter before the text (seen here under load: an empty line
    went out).  A person types slower than that; the test waits for an idle kernel."""
    root.scroll_into_view_if_needed()
    box = root.locator("input[type=text]").first
    assert box.count() == 1, "no text box in the console"
    before = snapshot(root)
    if box.is_disabled():
        return {"skipped": "the console's session is over (its box is disabled)"}
    pop3 = "AUTHORIZATION" in before.states
    expect = re.compile(r"^(\+OK|-ERR)\b" if pop3 else r"^250[ -]")
    typed = re.compile(rf"^{re.escape(line)}(?:\s|$)")
    sent = sum(1 for s in before.steps if s["dir"] == "C" and typed.match(s["line"]))
    box.click()
    box.fill(line)
    if settle is not None:
        settle()
    box.press("Enter")

    def answered(s: Snapshot) -> bool:
        idx = [i for i, st in enumerate(s.steps) if st["dir"] == "C" and typed.match(st["line"])]
        return (len(idx) > sent and idx[-1] + 1 < len(s.steps)
                and s.steps[idx[-1] + 1]["dir"] == "S"
                and bool(expect.match(s.steps[idx[-1] + 1]["line"])))

    after = _wait_for(root, answered, timeout,
                      f"typing {line!r} and Enter did not show a {expect.pattern} reply", before)
    return {"protocol": "pop3" if pop3 else "smtp", "reply": after.steps[-1]["line"]}


# --------------------------------------------------------------------------------------------
# Notebook copies


def prepare_notebook(src: Path, dst: Path, extra_cells: tuple[str, ...] = ()) -> None:
    """Copy a notebook for the browser: outputs cleared, the python3 kernel, nbval's markers
    turned into what JupyterLab understands, and maybe extra code cells at the end.

    * ``# NBVAL_RAISES_EXCEPTION``: tagged ``raises-exception`` (JupyterLab then goes on after
      the error, as nbval does; the check ignores that cell's error).
    * ``# NBVAL_SKIP``: not run here either (nbval never runs it, so nothing may rely on it).
    """
    import nbformat

    nb = nbformat.read(src, as_version=4)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.metadata.pop("widgets", None)  # saved widget state: the run makes its own
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        markers = " ".join(ln for ln in cell.source.splitlines() if ln.lstrip().startswith("#"))
        if "NBVAL_RAISES_EXCEPTION" in markers:
            tags = list(cell.metadata.get("tags", []))
            cell.metadata["tags"] = [*tags, "raises-exception"]
        elif "NBVAL_SKIP" in markers:
            cell.source = "# NBVAL_SKIP: not run by the browser test either"
    for source in extra_cells:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)


@contextlib.contextmanager
def lab_and_browser(root: Path, home: Path, chromium: str
                    ) -> Iterator[tuple[JupyterLabServer, Chromium]]:
    """JupyterLab and Chromium, both stopped at the end whatever happens."""
    server = JupyterLabServer(root, home)
    browser = Chromium(chromium)
    try:
        server.spawn()  # Chromium starts while JupyterLab does
        browser.start()
        server.wait_ready()
        yield server, browser
    finally:
        left = browser.close()
        left.update(server.stop())
        assert not left, f"processes survived SIGKILL: {sorted(left)}"
        # Anything else still pointing into our folders (a kernel's connection file is in
        # the runtime folder) escaped the bookkeeping above: stop it, and say so.
        strays = processes_mentioning(str(home))
        left = reap(strays, grace=2.0)
        assert not strays, (f"processes left behind: {sorted(strays)} (killed; "
                            f"survivors: {sorted(left)})")
