"""Inputs the property tests and the fuzzer found, kept as plain tests so they run every time.

Hypothesis runs few examples in CI; a rare input it once found must not depend on luck to be
found again.  Each test names how it was found.
"""

from __future__ import annotations

import pytest

from .test_pop3_core import FILES, Box, feed, new_session, run


@pytest.mark.parametrize("password", [b"\x80ecret", b"s\xe9cret", b"\xff"])
def test_pop3_pass_with_8bit_bytes_is_just_a_wrong_password(password: bytes) -> None:
    # Found by test_pop3_core.test_split_anywhere_same_result with MAILPROTO_FUZZ_EXAMPLES=1500:
    # UnicodeEncodeError in auth._check_password, an internal error that closed the session.
    box = Box()
    try:
        session, _ = new_session(box)
        feed(session, b"USER alice\r\n")
        out = session.receive(b"PASS " + password + b"\r\n")
        assert out.startswith(b"-ERR [AUTH]"), out
        assert not session.closed
    finally:
        box.close()


def test_pop3_8bit_in_other_arguments() -> None:
    out, _, _, left = run([b"USER \x80\r\nPASS x\r\nAPOP \xff \xfe\r\nUSER alice\r\nPASS secret\r\n"
                           b"RETR \xc3\xa9\r\nTOP 1 \x80\r\nUIDL \x00\r\nQUIT\r\n"])
    assert b"Internal server error" not in out
    assert len([n for n, _ in left if n.startswith("alice/")]) == len(FILES)
