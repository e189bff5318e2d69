"""``mailproto show``: a file, stdin, a wire capture, a missing file."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

# tests/ is on sys.path (tests/conftest.py): share the seed's welcome message, not a copy of it.
from message.test_inspect import WELCOME, WELCOME_SUBJECT

from mailproto.commands.show import add_parser, run
from mailproto.message import to_wire


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mailproto")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["show", *argv])


def test_parser_wires_run() -> None:
    args = _args("msg.eml", "--lines", "2")
    assert args.func is run and args.file == "msg.eml" and args.lines == 2


def test_show_a_maildir_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "1139188364.M1P2.mail.musemail.com"
    path.write_bytes(WELCOME)
    assert run(_args(str(path))) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Message: {len(WELCOME)} octets, stored form\n")
    assert f"  Subject: {WELCOME_SUBJECT}\n" in out
    assert "  From: 系统管理员\n" in out
    assert "    | 恭喜!\n" in out
    assert "    | 请牢记您的用户名和密码" in out
    assert "[warning] header From: 8-bit bytes in a header" in out


def test_show_limits_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m"
    path.write_bytes(WELCOME)
    assert run(_args(str(path), "--lines", "1")) == 0
    out = capsys.readouterr().out
    assert "    | 恭喜!\n    | … 4 more lines\n" in out


def test_show_a_retr_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "retr.txt"
    path.write_bytes(b"+OK 974 octets\r\n" + to_wire(WELCOME + b".signature\n"))
    assert run(_args(str(path), "--lines", "9")) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Message: {len(WELCOME) + 11} octets, wire form\n")
    assert "POP3 status line '+OK 974 octets' removed" in out
    assert "| .signature" in out  # the stuffed dot is gone again


def test_show_stdin() -> None:
    code = "import sys; from mailproto.cli import main; sys.exit(main(['show', '-']))"
    done = subprocess.run([sys.executable, "-c", code], input=to_wire(WELCOME),
                          capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode("utf-8")
    assert "wire form" in out and f"Subject: {WELCOME_SUBJECT}" in out


def test_show_stdin_via_run() -> None:
    code = ("import argparse, sys; from mailproto.commands.show import run; "
            "sys.exit(run(argparse.Namespace(file='-', lines=5)))")
    done = subprocess.run([sys.executable, "-c", code], input=WELCOME, capture_output=True,
                          timeout=60, env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0, done.stderr
    # A terminal that cannot show Chinese gets escapes, not a crash.
    assert b"Subject: \\u606d\\u559c" in done.stdout


def test_show_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_args(str(tmp_path / "nope"))) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "cannot read" in captured.err
