"""How many octets stored text takes once every line ends in CRLF (RFC 1939 §5, LIST and STAT;
RFC 5321 §2.3.8 lines), counted piece by piece.

A Maildir file has LF line ends (a CRLF written by another tool stays CRLF); on the wire each
lone LF gains a CR, and a last line without an ending gets CRLF.  The store counts while it
writes (for the ``,W=`` in a delivered file's name); POP3 counts a file it did not write.
Pure: no I/O.
"""

from __future__ import annotations


class CRLFSize:
    """Feed the text in pieces (cut anywhere); :attr:`total` is its size with CRLF line ends."""

    def __init__(self) -> None:
        self.size = 0  # octets fed
        self._lone_lf = 0  # LFs without a CR before them: one more octet each
        self._last = b""  # the last octet fed

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        self._lone_lf += data.count(b"\n") - data.count(b"\r\n")
        if self._last == b"\r" and data[:1] == b"\n":
            self._lone_lf -= 1  # a CRLF cut between two pieces
        self._last = data[-1:]

    @property
    def total(self) -> int:
        size = self.size + self._lone_lf
        return size + 2 if self.size and self._last != b"\n" else size
