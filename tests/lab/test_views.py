"""Static views (HTML, SVG, PNG for saved notebooks) and the sequence diagram."""

from __future__ import annotations

from pathlib import Path

from mailproto.lab.diagram import figure_to_svg
from mailproto.lab.sequence import draw_sequence
from mailproto.lab.views import SequenceView, StateDiagram, TranscriptView, inline_svg
from mailproto.smtp.states import TABLE as SMTP

from ._sessions import pop3_transcript, smtp_transcript


def test_sequence_has_one_arrow_per_step(tmp_path: Path) -> None:
    t = smtp_transcript(tmp_path)
    fig = draw_sequence(t)
    ax = fig.axes[0]
    gids = {a.get_gid() for a in (*ax.patches, *ax.lines) if (a.get_gid() or "").startswith(
        "msg:")}
    assert gids == {f"msg:0:{i}" for i in range(len(t))}
    texts = [x.get_text() for x in ax.texts]
    assert "EHLO client.test" in texts
    assert any(x.startswith("✗ 503 5.5.1 Error: send HELO/EHLO first") for x in texts)
    assert any("(+7 lines)" in x for x in texts)  # the EHLO reply, folded
    assert "DATA" in texts and "CLOSED" in texts  # the state on the side


def test_sequence_of_several_hops(tmp_path: Path) -> None:
    smtp = smtp_transcript(tmp_path / "a")
    pop3 = pop3_transcript(tmp_path / "b")
    for step in pop3.steps:  # the POP3 session happens after the SMTP one
        step.time += 1000
    fig = draw_sequence([(smtp, ("sender", "mail server")), (pop3, ("reader", "mail server"))])
    parties = [t.get_text() for t in fig.axes[0].texts if (t.get_gid() or "").startswith(
        "party:")]
    assert parties == ["sender", "mail server", "reader"]
    one = figure_to_svg(fig)
    two = figure_to_svg(draw_sequence([(smtp, ("sender", "mail server")),
                                       (pop3, ("reader", "mail server"))]))
    assert one == two


def test_views_repr(tmp_path: Path) -> None:
    t = smtp_transcript(tmp_path)
    assert "data-step" in TranscriptView(t, show_crlf=True)._repr_html_()
    diagram = StateDiagram.from_transcript(t, upto=5)
    svg = diagram._repr_svg_()
    assert svg == StateDiagram.from_transcript(t, upto=5)._repr_svg_()
    assert "✗ at CONNECTED" in svg
    assert diagram._repr_png_().startswith(b"\x89PNG")
    assert StateDiagram(SMTP, current="GREETED")._repr_svg_() != svg
    seq = SequenceView(t)
    assert seq._repr_svg_().lstrip().startswith("<?xml")
    assert seq._repr_png_().startswith(b"\x89PNG")


def test_inline_svg_drops_the_global_style() -> None:
    svg = StateDiagram(SMTP).svg()
    assert "<style" in svg
    inline = inline_svg(svg)
    assert inline.startswith("<svg") and "<style" not in inline and "<?xml" not in inline
    assert 'width="100%"' in inline
