"""The transcript as HTML: structure, colours with prefixes, folding, escaping of hostile bytes."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from mailproto.lab import palette
from mailproto.lab.transcript_html import render_transcript
from mailproto.transcript import Step, Transcript

from ._sessions import smtp_transcript


class _Tags(HTMLParser):
    """Collects start tags and checks that every element is closed in order."""

    VOID = {"br", "hr", "img", "meta"}

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()


def parse(html: str) -> _Tags:
    p = _Tags()
    p.feed(html)
    p.close()
    assert p.stack == []
    return p


def test_structure_one_div_per_step(tmp_path: Path) -> None:
    t = smtp_transcript(tmp_path)
    html = render_transcript(t)
    tags = parse(html)
    steps = [a for tag, a in tags.tags if tag == "div" and "data-step" in a]
    assert [int(a["data-step"] or -1) for a in steps] == list(range(len(t)))
    assert "<style" not in html and "<script" not in html  # inline styles only
    assert html.count(">C:</span>") == sum(1 for s in t if s.direction == "C")
    assert html.count(">S:</span>") == sum(1 for s in t if s.direction == "S")
    assert f"color:{palette.CLIENT}" in html and f"color:{palette.SERVER}" in html
    assert html.count("<details") >= len(t)  # every line has a folding note


def test_multiline_reply_and_data_fold(tmp_path: Path) -> None:
    html = render_transcript(smtp_transcript(tmp_path))
    assert "7 more line(s) of this reply" in html  # EHLO's extension list (no STARTTLS)
    assert '[the message: 4 line(s) and the final "."]' in html


def test_options_crlf_octets_upto_highlight(tmp_path: Path) -> None:
    t = smtp_transcript(tmp_path)
    plain = render_transcript(t, annotate=False)
    assert "␍␊" not in plain and "octets" not in plain and "<details" in plain  # data only
    assert "data-current" not in plain
    html = render_transcript(t, show_crlf=True, show_octets=True, upto=3, highlight=2)
    assert html.count("data-step=") == 3
    assert "␍␊" in html
    assert f"{len(t[0].raw)} octets" in html
    current = re.findall(r'data-step="(\d+)"[^>]*data-current="true"', html)
    assert current == ["2"]
    assert "▶" in html  # the highlight is not colour alone


def test_tls_boundary_is_a_rule() -> None:
    t = Transcript("smtp", [
        Step("C", "command", b"STARTTLS\r\n", {"verb": "STARTTLS", "arg": ""}),
        Step("S", "reply", b"220 2.0.0 Ready to start TLS\r\n", {"code": 220, "lines": [""]}),
        Step("*", "event", b"TLS started", {"event": "tls"}),
        Step("C", "command", b"EHLO me\r\n", {"verb": "EHLO", "arg": "me"}),
    ])
    html = render_transcript(t)
    assert 'role="separator"' in html
    assert "TLS started: encrypted from here" in html
    assert html.index("encrypted from here") < html.index("EHLO me")


def test_hostile_server_line_is_escaped_only(tmp_path: Path) -> None:
    # A real server reply that echoes the client's HELO name: the injection comes off the wire.
    t = smtp_transcript(tmp_path, ["EHLO <script>alert(1)</script>", "QUIT"])
    reply = t[2].raw
    assert b"<script>alert(1)</script>" in reply
    forged = Transcript("smtp", [
        Step("S", "reply", b"250 <script>alert(1)</script>\r\n", {}),
        Step("S", "reply", b"250 <img src=x onerror=alert(1)> \"'&\r\n", {}),
        Step("C", "command", b"HELO \xff\xfe\x00\x1b[2J\r\n", {}),
    ])
    for transcript in (t, forged):
        html = render_transcript(transcript, show_crlf=True, show_octets=True)
        assert "<script" not in html.lower() and "<img" not in html.lower()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        tags = {tag for tag, _ in parse(html).tags}
        assert tags <= {"div", "span", "details", "summary", "table", "tr", "td", "b", "i"}
    html = render_transcript(forged)
    assert "onerror" not in re.sub(r"&lt;img src=x onerror=alert\(1\)&gt;", "", html)
    assert r"HELO \xff\xfe\x00\x1b[2J" in html  # invalid and control bytes shown, not sent


def test_empty_transcript() -> None:
    assert "(nothing yet)" in render_transcript(Transcript("pop3"))
