"""The message inspector: from the bytes on the wire to the text a person reads.

Three layers of one message (RFC 5321 §4.5.2, RFC 5322, RFC 2045–2047, RFC 2231):

* wire — CRLF lines, dot-stuffed, ended by "." (:func:`to_wire`, :func:`from_wire`);
* stored — LF lines with the server's trace fields on top (:func:`strip_trace`);
* read — headers and bodies decoded (:func:`inspect_message`, :func:`summary_text`).

Pure: no I/O, nothing heavy imported.
"""

from __future__ import annotations

from .explain import explain_body, explain_encoded_word
from .inspect import inspect_message
from .layers import (
    CHANGES,
    LineDiff,
    from_wire,
    layer_diff,
    looks_like_wire,
    strip_trace,
    to_wire,
    unwrap,
)
from .model import HeaderField, MessageReport, Part, Problem, Step
from .summary import summary_text

__all__ = [
    "CHANGES",
    "HeaderField",
    "LineDiff",
    "MessageReport",
    "Part",
    "Problem",
    "Step",
    "explain_body",
    "explain_encoded_word",
    "from_wire",
    "inspect_message",
    "layer_diff",
    "looks_like_wire",
    "strip_trace",
    "summary_text",
    "to_wire",
    "unwrap",
]
