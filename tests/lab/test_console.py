"""The console, driven without a browser: typed lines, history, and a server that closes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailproto.errors import ConnectionClosed
from mailproto.lab import palette
from mailproto.lab.console import Console
from mailproto.lab.svgparts import group_spans

from ._sessions import Live, store


def console(tmp_path: Path, protocol: str = "smtp") -> tuple[Console, Live]:
    live = Live(protocol, store(tmp_path))
    return Console(live.step_fn, lambda: live.transcript), live


def current(svg: str, state: str) -> bool:
    start, end = group_spans(svg, {f"state:{state}"})[f"state:{state}"]
    return f"fill: {palette.CURRENT_FILL.lower()}" in svg[start:end]


def test_typing_lines_updates_the_views(tmp_path: Path) -> None:
    c, live = console(tmp_path)
    assert "220 mail.test" in c.transcript_html.value
    c.text.value = "EHLO me"
    c.send_button.click()
    assert c.text.value == ""
    assert "250-mail.test Hello me" in c.transcript_html.value
    assert current(c.diagram_html.value, "GREETED")
    c._on_text_msg(c.text, {"event": "submit"}, [])  # Enter on an empty box: an empty line
    assert "500 5.5.2 Error: bad syntax" in c.transcript_html.value


def test_history_buttons(tmp_path: Path) -> None:
    c, _ = console(tmp_path)
    for line in ("EHLO me", "NOOP", "HELP"):
        c.submit(line)
    c.up_button.click()
    assert c.text.value == "HELP"
    c.up_button.click()
    c.up_button.click()
    c.up_button.click()  # stops at the oldest
    assert c.text.value == "EHLO me"
    c.down_button.click()
    assert c.text.value == "NOOP"
    c.down_button.click()
    c.down_button.click()
    assert c.text.value == ""
    c.up_button.click()
    c.send_button.click()  # resend a recalled line unchanged
    assert c.history == ["EHLO me", "NOOP", "HELP"]
    assert c.transcript_html.value.count("HELP</span>") >= 2


def test_quit_closes_with_a_clear_message(tmp_path: Path) -> None:
    c, _ = console(tmp_path, "pop3")
    c.submit("QUIT")
    assert c.closed and c.text.disabled
    assert "closed the connection" in c.status.value
    c.submit("NOOP")  # ignored, nothing raised
    assert current(c.diagram_html.value, "CLOSED")


def test_connection_closed_error_is_reported(tmp_path: Path) -> None:
    live = Live("smtp", store(tmp_path))

    def send(line: str) -> None:
        raise ConnectionClosed("connection reset by peer")

    c = Console(send, lambda: live.transcript)
    c.submit("NOOP")
    assert c.closed and "connection reset by peer" in c.status.value
    assert "text/html" in c._repr_mimebundle_()


def test_enter_in_a_kernel_waits_for_the_held_back_value(tmp_path: Path,
                                                          monkeypatch: Any) -> None:
    """The front end sends "Enter" at once but may hold the box's last value update until the
    kernel has answered the previous one: Enter must read the box after that update."""
    import asyncio

    from mailproto.lab import console as console_module

    c, _ = console(tmp_path)
    c.send_line("EHLO me")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(console_module, "_kernel_loop", lambda: loop)  # as in a kernel
        c.text.value = "NO"  # synced so far
        c._on_text_msg(c.text, {"event": "submit"}, [])  # Enter, before the last update
        await asyncio.sleep(0.01)
        c.text.value = "NOOP"  # the held-back update arrives
        await asyncio.sleep(console_module.ENTER_DELAY + 0.1)

    asyncio.run(scenario())
    assert "NOOP" in c.transcript_html.value
    assert ">NO<" not in c.transcript_html.value  # the stale line was not sent


def test_enter_outside_a_kernel_sends_at_once_even_with_a_loop_set(tmp_path: Path) -> None:
    """A loop that is set but not ours to run (Playwright's, in the browser tests) must not
    swallow the line: outside a kernel, Enter sends at once."""
    import asyncio

    c, _ = console(tmp_path)
    c.send_line("EHLO me")

    async def scenario() -> None:
        c.text.value = "NOOP"
        c._on_text_msg(c.text, {"event": "submit"}, [])
        assert "NOOP" in c.transcript_html.value  # no waiting

    asyncio.run(scenario())
