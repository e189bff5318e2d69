"""The notebook face of the lab: sessions that show each exchange, and the exercise checks."""

from __future__ import annotations

import pytest

from mailproto.lab import check, start
from mailproto.lab.exercises import exchanges, hint, reset


def test_exchange_shows_lines_meaning_and_state() -> None:
    with start(users={"alice": "a-pw", "bob": "b-pw"}) as lab:
        smtp = lab.smtp()
        ehlo = smtp.send("EHLO student.example")
        assert ehlo.state_change == ("CONNECTED", "GREETED")
        assert ehlo.reply == "250-mail.test Hello student.example [127.0.0.1]"
        text = repr(ehlo)
        assert text.splitlines()[0] == "C: EHLO student.example"
        assert text.splitlines()[-1] == "   state: CONNECTED → GREETED"
        html = ehlo._repr_html_()
        assert "EHLO student.example" in html and "CONNECTED → GREETED" in html
        refused = smtp.send("RCPT TO:<bob@local.test>")
        assert refused.reply.startswith("503 5.5.1") and refused.state_change == ("GREETED",
                                                                                  "GREETED")


def test_pipelined_lines_are_one_exchange_with_replies_in_order() -> None:
    with start(users={"alice": "a-pw", "bob": "b-pw"}) as lab:
        smtp = lab.smtp()
        smtp.send("EHLO x")
        ex = smtp.send_lines("MAIL FROM:<alice@local.test>", "RCPT TO:<bob@local.test>",
                             "RCPT TO:<nobody@local.test>")
        codes = [s.text[:3] for s in ex.replies]
        assert codes == ["250", "250", "550"]
        assert [v for v, _, _ in exchanges(smtp.transcript)] == ["EHLO", "MAIL", "RCPT", "RCPT"]


def test_a_closed_session_says_so_instead_of_raising() -> None:
    with start() as lab:
        pop = lab.pop3()
        assert pop.send("QUIT").reply.startswith("+OK")
        after = pop.send("NOOP")
        assert after.error and not after.steps


def test_tcp_lab_runs_a_real_server_with_tls() -> None:
    with start(tcp=True, users={"carol": "c-pw"}) as lab:
        assert "127.0.0.1:" in repr(lab)
        smtp = lab.smtp()
        smtp.send("EHLO x")
        tls = smtp.send("STARTTLS")
        assert tls.reply.startswith("220") and not tls.error
        assert smtp.client.core.tls
        assert smtp.send("EHLO x").reply.startswith("250")


def test_check_escalates_hints_and_knows_its_exercises() -> None:
    reset()
    with start(users={"alice": "a-pw", "bob": "b-pw"}) as lab:
        smtp = lab.smtp()
        smtp.send("EHLO me")
        first = check("smtp-first-message", smtp)
        second = check("smtp-first-message", smtp)
        assert not first and not second
        assert first.hint and second.hint and first.hint != second.hint
        assert "✘" in repr(first) and "✔" in repr(first)  # what is right is said too
        for line in ("MAIL FROM:<alice@local.test>", "RCPT TO:<bob@local.test>", "DATA",
                     "Subject: hi", "", "hello", "."):
            smtp.send(line)
        assert check("smtp-first-message", smtp)
    assert hint("smtp-first-message")
    with pytest.raises(KeyError):
        check("no-such-exercise", None)
    reset()
