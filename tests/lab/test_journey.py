"""The journey of a message: real servers on loopback, one message, every hop recorded and shown."""

from __future__ import annotations

import email
import re
import threading
import time

import pytest

from mailproto.lab.diagram import figure_to_svg
from mailproto.lab.journey import Journey, Masker
from mailproto.lab.topology import ReceivedChain, ReceivedLine

SMTP_RELAY = ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
POP3_FETCH = ["USER", "PASS", "STAT", "LIST", "RETR", "QUIT"]


def gids(fig: object, prefix: str) -> list[str]:
    ax = fig.axes[0]  # type: ignore[attr-defined]
    found = [a.get_gid() for a in (*ax.patches, *ax.lines, *ax.texts)]
    return sorted(g for g in found if g and g.startswith(prefix))


@pytest.fixture(scope="module")
def three() -> Journey:
    return Journey.run(hops=3, subject="The journey", body="Hello Bob,\n.a line with a dot\nbye\n")


def test_three_hops_arrive_intact_and_pop3_gives_the_stored_bytes(three: Journey) -> None:
    assert three.delivered is not None and three.retrieved is not None
    assert three.retrieved == three.delivered.replace(b"\n", b"\r\n")
    msg = email.message_from_bytes(three.delivered)
    received = msg.get_all("Received")
    assert len(received) == 3
    assert "by mx.b.test" in received[0] and "by relay.r.test" in received[1]
    assert "by smtp.a.test" in received[2] and "with ESMTPA" in received[2]
    assert msg["Return-Path"] == "<alice@a.test>"
    assert msg["Subject"] == "The journey"
    assert three.delivered.endswith(b"\n\nHello Bob,\n.a line with a dot\nbye\n")
    assert not three.bounces and not three.running


def test_every_hop_has_its_transcript(three: Journey) -> None:
    hops = three.hops
    assert [h.kind for h in hops] == ["submission", "relay", "relay", "pop3"]
    assert [h.name for h in hops] == [
        "hop 1: alice's client → smtp.a.test (submission)",
        "hop 2: smtp.a.test → relay.r.test",
        "hop 3: relay.r.test → mx.b.test",
        "POP3: bob's client fetches his mail from mx.b.test"]
    name, transcript = hops[1]  # a hop unpacks as (name, transcript)
    assert name == hops[1].name and transcript is hops[1].transcript
    assert hops[0].commands() == ["EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]
    assert hops[1].commands() == SMTP_RELAY and hops[2].commands() == SMTP_RELAY
    assert hops[3].commands() == POP3_FETCH
    assert [h.protocol for h in hops] == ["smtp", "smtp", "smtp", "pop3"]
    assert all(h.result.startswith("accepted: 250") for h in hops[:3])
    assert "EHLO smtp.a.test" in hops[1].transcript.to_text()  # the relay's own client
    assert "EHLO relay.r.test" in hops[2].transcript.to_text()
    assert hops[0].started <= hops[1].started <= hops[2].started <= hops[3].started
    ports = {h.address for h in hops}
    assert len(ports) == 4 and all(host == "127.0.0.1" and port > 0 for host, port in ports)


def test_received_chain_table_and_reading_order(three: Journey) -> None:
    chain = three.received_chain()
    assert [r.by for r in chain.rows] == ["mx.b.test", "relay.r.test", "smtp.a.test"]
    assert [r.hop for r in chain.rows] == [3, 2, 1]
    assert [r.from_ for r in chain.in_travel_order()] == ["alice-laptop", "smtp.a.test",
                                                          "relay.r.test"]
    assert [r.with_ for r in chain.in_travel_order()] == ["ESMTPA", "ESMTP", "ESMTP"]
    assert all(r.id and r.date for r in chain.rows)
    html = chain._repr_html_()
    assert html.count("<tr data-hop=") == 3
    assert "read from the bottom up" in html and html.count("✓ the server of the line") == 2
    assert "Return-Path: &lt;alice@a.test&gt;" in html


def test_views_render(three: Journey) -> None:
    html = three._repr_html_()
    for hop in three.hops:
        assert f'data-hop="{hop.name.replace(chr(39), "&#x27;")}"' in html
    assert html.count('<div class="mailproto-transcript"') == 4
    assert html.count("<svg") == 2 and "<style" not in html
    assert re.search(r"127\.0\.0\.1:\d+", html)  # not deterministic: real ports
    topology = three.topology().figure()
    assert gids(topology, "node:") == sorted(
        ["node:alice", "node:smtp.a.test", "node:relay.r.test", "node:mx.b.test", "node:bob"])
    assert gids(topology, "link:") == sorted(
        ["link:alice:smtp.a.test", "link:smtp.a.test:relay.r.test",
         "link:relay.r.test:mx.b.test", "link:mx.b.test:bob"])
    sequence = three.sequence().figure()
    steps = sum(len(h.transcript) for h in three.hops)
    assert len(gids(sequence, "msg:")) == steps
    assert gids(sequence, "party:") == sorted(
        f"party:{p}" for p in ("alice's client", "smtp.a.test", "relay.r.test", "mx.b.test",
                               "bob's client"))
    assert three.topology()._repr_png_().startswith(b"\x89PNG")


def test_two_hops_deterministic_views_repeat_and_no_thread_is_left() -> None:
    before = set(threading.enumerate())
    one = Journey.run(hops=2, deterministic=True)
    assert set(threading.enumerate()) == before
    two = Journey.run(hops=2, deterministic=True)
    assert set(threading.enumerate()) == before
    assert len(one.received_chain()) == 2
    html = one._repr_html_()
    assert html == two._repr_html_()
    assert not re.search(r"127\.0\.0\.1:\d", html)
    assert "QID1" in html and "Day, DD Mon YYYY hh:mm:ss +0000" in html
    assert "&lt;MESSAGE-ID@a.test&gt;" in html and one.message_id not in html
    assert figure_to_svg(one.topology().figure()) == figure_to_svg(two.topology().figure())
    assert len(gids(one.topology().figure(), "node:")) == 4
    # The recorded transcripts are untouched: only the views are masked.
    assert re.search(rb"queued as [0-9A-F]{8,}", one.hops[0].transcript[-3].raw)


def test_fault_data_421_retries_then_exactly_one_bounce() -> None:
    before = set(threading.enumerate())
    started = time.monotonic()
    journey = Journey.run(hops=3, fault="data-421", retry_base=0.2, queue_lifetime=1.0)
    took = time.monotonic() - started
    assert took < 15, took
    assert set(threading.enumerate()) == before
    attempts = journey.attempts
    to_b = [h for h in attempts if h.server == "mx.b.test"]
    assert len(to_b) >= 2 and [h.attempt for h in to_b] == list(range(1, len(to_b) + 1))
    assert all(h.result.startswith("will retry: 421 4.3.0") for h in to_b)
    assert all("DATA" in h.commands() and "QUIT" not in h.commands() for h in to_b)
    assert len(journey.bounces) == 1
    bounce = journey.bounces[0]
    assert bounce.recipients == ("bob@b.test",) and bounce.statuses == ("4.4.7",)
    assert bounce.reporting_mta == "relay.r.test" and "421 4.3.0" in bounce.diagnostics[0]
    assert b"Subject: Undelivered Mail Returned to Sender" in bounce.data
    back = [h for h in journey.hops if h.kind == "bounce"]
    assert len(back) == 1 and back[0].client == "relay.r.test" and back[0].server == "smtp.a.test"
    assert "MAIL FROM:<>" in back[0].transcript.to_text()
    assert journey.retrieved is None and journey.delivered is None
    assert journey.hops[-1].name == "POP3: alice's client fetches her bounce from smtp.a.test"
    html = journey._repr_html_()
    assert "Retries and bounces" in html and "alice got a bounce from" in html
    assert "Received: lines" not in html  # nothing arrived to trace
    topology = journey.topology().figure()
    assert "link:relay.r.test:smtp.a.test" in gids(topology, "link:")  # the bounce goes back
    assert "link:smtp.a.test:alice" in gids(topology, "link:")  # alice fetches it


def test_fault_rcpt_452_is_retried_and_delivered() -> None:
    journey = Journey.run(hops=2, fault="rcpt-452", retry_base=0.2)
    assert journey.recipients == ["bob@b.test", "carol@b.test"]
    first, second = journey.attempts
    assert first.result.startswith("accepted for bob@b.test; will retry carol@b.test: 452")
    assert second.result.startswith("accepted: 250") and second.attempt == 2
    assert not journey.bounces and journey.retrieved is not None


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        Journey(hops=1)
    with pytest.raises(ValueError, match="unknown fault"):
        Journey(fault="melt")
    with pytest.raises(RuntimeError, match="not running"):
        Journey().send()


def test_received_line_parse_and_chain_gap() -> None:
    line = ReceivedLine.parse("from mx.csie.example.org (mx.csie.example.org [192.0.2.25])\r\n"
                              "\tby mail.example.net (Postfix) with ESMTPS id 4F1A2\r\n"
                              "\tfor <bob@example.net>; Tue, 2 Jan 2024 10:00:00 +0800", 1, 2)
    assert line.from_ == "mx.csie.example.org" and line.by == "mail.example.net"
    assert line.with_ == "ESMTPS" and line.id == "4F1A2"
    assert line.comments["from"] == "mx.csie.example.org [192.0.2.25]"
    assert line.date == "Tue, 2 Jan 2024 10:00:00 +0800"
    forged = (b"Received: from elsewhere.test by mx.b.test with ESMTP id B; Tue, 2 Jan 2024 "
              b"10:00:01 +0000\r\nReceived: from pc by smtp.a.test with ESMTPA id A; Tue, 2 Jan "
              b"2024 10:00:00 +0000\r\n\r\nbody\r\n")
    html = ReceivedChain.parse(forged)._repr_html_()
    assert "✗ but the line below was written by smtp.a.test" in html


def test_masker_numbers_queue_ids_in_order() -> None:
    m = Masker(["250 2.0.0 Ok: queued as 1A2B3C4D5E600", "id 1A2B3C4D5E700; id 1A2B3C4D5E600"])
    assert m.text("queued as 1A2B3C4D5E700, then 1A2B3C4D5E600") == "queued as QID2, then QID1"
    assert m.text("Tue, 2 Jan 2024 10:00:00 +0000 at 127.0.0.1:2525 <123.456@x>") == \
        "Day, DD Mon YYYY hh:mm:ss +0000 at 127.0.0.1:PORT <TIMESTAMP@x>"
