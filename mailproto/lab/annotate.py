"""What each line of a transcript means, for a student (pure: no widgets, no plotting).

:func:`annotate` walks a :class:`~mailproto.transcript.Transcript` and returns one :class:`Note`
per step: what a command does, what a reply code means (RFC 5321 §4.2.1 first and second digit,
the RFC 3463 enhanced status code, POP3 ``+OK``/``-ERR`` and RFC 2449 RESP-CODES), each with the
RFC section that decides it.  AUTH lines are decoded, because the point to make is that base64 is
an encoding anyone can undo, not encryption (RFC 4954 §4, RFC 4616 §6).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..transcript import CLIENT, EVENT, SERVER, Step, Transcript
from . import codes

#: How a NUL is shown in decoded SASL data: RFC 4616 separates the fields with it.
NUL_MARK = "␀"

# Outcome of a reply, for the views (colour plus a word, never colour alone).
POSITIVE, INTERMEDIATE, TRANSIENT, PERMANENT, INFO = (
    "positive", "intermediate", "transient", "permanent", "info")


@dataclass(frozen=True)
class Note:
    """The explanation of one step."""

    summary: str
    details: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()
    #: (label, value) pairs a student should see decoded, e.g. ("password", "secret").
    decoded: tuple[tuple[str, str], ...] = ()
    warning: str = ""
    outcome: str = INFO

    @property
    def text(self) -> str:
        """Everything as plain text (for tests, search and a console)."""
        parts = [self.summary, *self.details]
        parts += [f"{k}: {v}" for k, v in self.decoded]
        if self.warning:
            parts.append(self.warning)
        if self.refs:
            parts.append("; ".join(self.refs))
        return "\n".join(parts)


# -- bytes a student can read --------------------------------------------------------------------
def visible(data: bytes, nul: str = "\\x00") -> str:
    """Text with every byte visible: invalid UTF-8 and control characters as ``\\xNN``.

    Tab stays a tab; ``nul`` replaces NUL (``␀`` for SASL fields).  CR and LF are escaped too:
    callers split lines first.
    """
    text = data.decode("utf-8", "surrogateescape")
    out = []
    for ch in text:
        o = ord(ch)
        if ch == "\0":
            out.append(nul)
        elif 0xDC80 <= o <= 0xDCFF:  # an undecodable byte, kept by surrogateescape
            out.append(f"\\x{o - 0xDC00:02x}")
        elif (o < 0x20 and ch != "\t") or o == 0x7F or 0x80 <= o < 0xA0:
            out.append(f"\\x{o:02x}")
        elif o in (0x2028, 0x2029, 0x202E, 0x200E, 0x200F):  # line/bidi tricks
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def decode_base64(text: str) -> bytes | None:
    """Strict base64 (RFC 4954 §4), or None if it is not base64."""
    try:
        return base64.b64decode(text.strip().encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


# -- SMTP replies ---------------------------------------------------------------------------------
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?= |$)")


def describe_enhanced(status: str) -> str | None:
    """``5.1.1`` → "permanent failure · addressing · bad destination mailbox …" (RFC 3463)."""
    m = _ENHANCED.match(status)
    if not m:
        return None
    cls, subject, detail = m.groups()
    meaning, ref = codes.ENHANCED_DETAIL.get(f"{subject}.{detail}", ("(not a registered detail)",
                                                                      "RFC 3463 §3"))
    subj = codes.ENHANCED_SUBJECT.get(subject, "(unknown subject)")
    return f"{m.group(0)}: {codes.ENHANCED_CLASS[cls]} · {subj} · {meaning} ({ref})"


def describe_smtp_code(code: int) -> str:
    """The meaning of a reply code, digit by digit (RFC 5321 §4.2.1)."""
    text = f"{code:03d}"
    first = codes.SMTP_FIRST_DIGIT.get(text[0], "not a valid first digit (2-5)")
    second = codes.SMTP_SECOND_DIGIT.get(text[1], "not a valid second digit (0-5)")
    return f"first digit {text[0]}: {first}; second digit {text[1]}: about {second}"


def _smtp_outcome(code: int) -> str:
    return {2: POSITIVE, 3: INTERMEDIATE, 4: TRANSIENT, 5: PERMANENT}.get(code // 100, INFO)


def smtp_reply(code: int, lines: Sequence[str], *, after: str = "", greeting: bool = False,
               mechanism: str | None = None, state: str = "") -> Note:
    """Explain an SMTP reply.  ``after`` is the verb it answers, ``state`` the state before."""
    meaning, ref = codes.SMTP_REPLY_CODES.get(code, ("a code RFC 5321 does not define", ""))
    refs = [r for r in (ref, "RFC 5321 §4.2.1") if r]
    details = [describe_smtp_code(code)]
    first = lines[0] if lines else ""
    enhanced = describe_enhanced(first)
    if enhanced:
        details.append(enhanced)
        refs.append("RFC 3463")
    decoded: list[tuple[str, str]] = []
    warning = ""
    if greeting:
        details.insert(0, "The server speaks first: its greeting names the host (§4.3.1).")
    elif code == 220 and after == "STARTTLS":
        details.insert(0, "Next come the bytes of a TLS handshake, not text (RFC 3207 §4.2).")
    if code == 250 and after == "EHLO" and len(lines) > 1:
        for line in lines[1:]:
            word = line.split(" ", 1)[0].upper()
            what, kw_ref = codes.EHLO_KEYWORDS.get(word, ("an extension this lab does not "
                                                          "explain", ""))
            details.append(f"{line}: {what}" + (f" ({kw_ref})" if kw_ref else ""))
    if code == 334:
        raw = decode_base64(first)
        if raw is None:
            details.append("The challenge is not valid base64.")
        else:
            shown = visible(raw, NUL_MARK) or "(empty)"
            decoded.append(("challenge, decoded", shown))
            if mechanism == "CRAM-MD5":
                details.append("CRAM-MD5: the client answers 'user HMAC-MD5(password, this "
                               "challenge)' (RFC 2195 §2).")
            elif not raw:
                details.append("An empty challenge: send the whole PLAIN response now "
                               "(RFC 4616 §2).")
    if code == 354:
        details.append("Send the message now. A line that starts with '.' is sent with the dot "
                       "doubled (dot-stuffing, §4.5.2); only <CRLF>.<CRLF> ends it.")
    if code == 503:
        verb = after or "the command"
        where = f" in state {state}" if state else ""
        details.insert(0, f"The state table does not allow {verb}{where}; the state stays.")
    if code == 535:
        warning = ("The server cannot tell you whether the user or the password was wrong: "
                   "that would help someone guessing.")
    if code == 250 and after == "<CRLF>.<CRLF>":
        details.insert(0, "The message is accepted: from now on the server is responsible "
                          "for delivering it or bouncing it (§6.1).")
    summary = f"{code} {meaning}"
    return Note(summary, tuple(details), tuple(refs), tuple(decoded), warning,
                _smtp_outcome(code))


def parse_smtp_reply(raw: bytes) -> tuple[int, list[str]]:
    """Code and text lines from raw reply bytes (for transcripts without ``parsed``)."""
    code, lines = 0, []
    for line in raw.decode("utf-8", "replace").splitlines():
        if len(line) >= 3 and line[:3].isdigit():
            code = int(line[:3])
            lines.append(line[4:])
    return code, lines or [""]


# -- commands -------------------------------------------------------------------------------------
def smtp_command(verb: str, arg: str) -> Note:
    """Explain an SMTP command line (RFC 5321 §4.1.1)."""
    verb = verb.upper()
    entry = codes.SMTP_COMMANDS.get(verb)
    if entry is None:
        what = (f"{verb!r} is not an SMTP command: expect 500 (RFC 5321 §4.2.4)" if verb
                else "An empty line: expect 500")
        return Note(what, refs=("RFC 5321 §4.2.4",))
    what, ref = entry
    details: list[str] = []
    if verb in ("MAIL", "RCPT"):
        _, _, rest = arg.partition(">")
        for word in rest.split():
            key = word.split("=", 1)[0].upper()
            if key in codes.SMTP_PARAMETERS:
                meaning, p_ref = codes.SMTP_PARAMETERS[key]
                details.append(f"{word}: {meaning} ({p_ref})")
    if verb == "AUTH":
        return _auth_command(arg, what, ref)
    return Note(f"{verb}: {what}", tuple(details), (ref,))


def _auth_command(arg: str, what: str, ref: str) -> Note:
    mech, _, initial = arg.strip().partition(" ")
    mech = mech.upper()
    note = Note(f"AUTH {mech}: {what}", (), (ref,))
    if not initial:
        return note
    inner = sasl_response(mech, initial, challenge="")
    return Note(note.summary, ("With an initial response, saving one round trip (RFC 4954 §4).",
                               *inner.details), (ref, *inner.refs), inner.decoded, inner.warning)


def pop3_command(verb: str, arg: str, timestamp: str | None = None) -> Note:
    """Explain a POP3 command line (RFC 1939 §§5-7, RFC 2449, RFC 5034)."""
    verb = verb.upper()
    entry = codes.POP3_COMMANDS.get(verb)
    if entry is None:
        return Note(f"{verb!r} is not a POP3 command: expect -ERR", refs=("RFC 1939 §3",))
    what, ref = entry
    if verb == "PASS":
        return Note(f"PASS: {what}", (), (ref,), (("password, as sent", arg),),
                    "The password crosses the network as it is: use TLS (STLS), or APOP/SASL.",
                    INFO)
    if verb == "APOP":
        name, _, digest = arg.partition(" ")
        details = ["digest = MD5(timestamp + secret), in hex: the server computes the same and "
                   "compares. The secret itself is never sent."]
        decoded = [("name", name), ("digest", digest)]
        if timestamp:
            decoded.append(("timestamp from the greeting", timestamp))
        return Note(f"APOP: {what}", tuple(details), (ref, "RFC 1321"), tuple(decoded),
                    "But MD5 is weak (RFC 6151): a recorded exchange allows an offline dictionary "
                    "attack, and the server must keep every password in plain text.")
    if verb == "AUTH":
        return _auth_command(arg, what, ref)
    return Note(f"{verb}: {what}", (), (ref,))


def sasl_response(mechanism: str | None, line: str, challenge: str) -> Note:
    """A client's SASL line, decoded: PLAIN, LOGIN, CRAM-MD5 (RFC 4616, RFC 2195)."""
    text = line.strip()
    refs = ("RFC 4954 §4",)
    if text == "*":
        return Note("'*' cancels the authentication exchange (expect 501 / -ERR).", (), refs)
    if text == "=":
        return Note("'=' is an empty initial response.", (), refs)
    raw = decode_base64(text)
    if raw is None:
        return Note("Not valid base64: the server must refuse it.", (), refs,
                    outcome=PERMANENT)
    shown = visible(raw, NUL_MARK)
    mech = (mechanism or "").upper()
    plain_warning = ("base64 is an encoding, not encryption: anyone who sees this line can "
                     "decode the password. Only TLS protects it.")
    if mech == "PLAIN":
        parts = raw.split(b"\0")
        decoded = [("decoded", shown)]
        if len(parts) == 3:
            decoded += [("authorization id", visible(parts[0]) or "(empty: same as user)"),
                        ("user", visible(parts[1])), ("password", visible(parts[2]))]
        return Note("PLAIN response: authzid ␀ user ␀ password, in base64",
                    (f"{NUL_MARK} marks a NUL byte (0x00), the field separator (RFC 4616 §2).",),
                    (*refs, "RFC 4616 §2"), tuple(decoded), plain_warning)
    if mech == "LOGIN":
        label = "password" if "pass" in challenge.lower() else "user name"
        warning = plain_warning if label == "password" else ""
        return Note(f"LOGIN response: the {label}, in base64", (), refs,
                    ((label, shown),), warning)
    if mech == "CRAM-MD5":
        user, _, digest = shown.rpartition(" ")
        return Note("CRAM-MD5 response: user name and HMAC-MD5(password, challenge)",
                    ("The password is not sent, but the server must store it in plain text, "
                     "and a recorded exchange allows an offline guessing attack.",),
                    (*refs, "RFC 2195 §2"), (("user", user), ("digest", digest)))
    return Note("SASL response, in base64", (), refs, (("decoded", shown),))


# -- POP3 replies ---------------------------------------------------------------------------------
_RESP_CODE = re.compile(r"\[([^\]\s]+)\]")
_TIMESTAMP = re.compile(r"<[^<>\s]*@[^<>\s]*>")


def pop3_reply(raw: bytes, *, after: str = "", greeting: bool = False,
               mechanism: str | None = None) -> Note:
    """Explain ``+OK``, ``-ERR`` or a SASL ``+`` continuation (RFC 1939 §3, RFC 2449 §8)."""
    lines = raw.decode("utf-8", "replace").split("\r\n")
    if lines and lines[-1] == "":
        lines.pop()
    first = lines[0] if lines else ""
    body = lines[1:]
    if body and body[-1] == ".":
        body = body[:-1]
    details: list[str] = []
    decoded: list[tuple[str, str]] = []
    refs = ["RFC 1939 §3"]
    if first.startswith("+OK"):
        summary, outcome = "+OK: the command worked", POSITIVE
    elif first.startswith("-ERR"):
        summary, outcome = "-ERR: the command failed; the state stays", PERMANENT
    elif first.startswith("+"):
        challenge = decode_base64(first[1:].strip()) if first[1:].strip() else b""
        shown = visible(challenge, NUL_MARK) if challenge is not None else "(not base64)"
        return Note("'+': SASL continuation, the server waits for the next response",
                    ("RFC 5034 §4: the challenge is base64, like SMTP's 334.",),
                    ("RFC 5034 §4",), (("challenge, decoded", shown or "(empty)"),),
                    outcome=INTERMEDIATE)
    else:
        return Note("Not a POP3 status line: a reply starts with +OK or -ERR", (), tuple(refs))
    rest = first.split(" ", 1)[1] if " " in first else ""
    m = _RESP_CODE.match(rest)
    if m:
        resp = m.group(1)
        key = resp.upper() if resp.upper() in codes.POP3_RESP_CODES else resp.split("/")[0].upper()
        meaning, ref = codes.POP3_RESP_CODES.get(key, ("a response code this lab does not know",
                                                       "RFC 2449 §8"))
        details.append(f"[{resp}]: {meaning} ({ref})")
        refs.append(ref)
    if greeting:
        details.insert(0, "The server speaks first: the greeting (RFC 1939 §4).")
        ts = _TIMESTAMP.search(first)
        if ts:
            decoded.append(("APOP timestamp", ts.group(0)))
            details.append("The <...> timestamp makes APOP possible (RFC 1939 §7).")
    if body:
        details.append(f"A multi-line reply: {len(body)} line(s), ended by a line with a single "
                       "dot; lines starting with '.' are dot-stuffed (RFC 1939 §3).")
        if after == "CAPA":
            for line in body:
                tag = line.split(" ", 1)[0].upper()
                what, ref = codes.CAPA_TAGS.get(tag, ("a capability this lab does not explain",
                                                      ""))
                details.append(f"{line}: {what}" + (f" ({ref})" if ref else ""))
    if outcome == POSITIVE and after in ("PASS", "APOP", "AUTH"):
        details.append("Logged in: the session enters TRANSACTION and the mailbox is locked "
                       "(RFC 1939 §§4, 7).")
    if outcome == POSITIVE and after == "QUIT":
        details.append("QUIT commits: the messages marked with DELE are removed now "
                       "(UPDATE state, RFC 1939 §6).")
    return Note(summary, tuple(details), tuple(refs), tuple(decoded), "", outcome)


# -- a whole transcript ---------------------------------------------------------------------------
@dataclass
class _Context:
    protocol: str
    last_verb: str = ""
    mechanism: str | None = None
    challenge: str = ""
    continuation: bool = False  # the last server line asked for a SASL response
    timestamp: str | None = None
    notes: list[Note] = field(default_factory=list)


def _event(step: Step, protocol: str) -> Note:
    kind = step.parsed.get("event", "")
    if kind == "tls":
        ref = "RFC 3207 §4.2" if protocol == "smtp" else "RFC 2595 §4"
        return Note("TLS started: everything from here on is encrypted",
                    ("Both sides forget what was said before: the client must greet again. "
                     "Everything above this line crossed the network readable by anyone.",),
                    (ref,), outcome=INFO)
    if kind == "closed":
        return Note("The connection was lost: nothing half-sent is delivered or deleted.",
                    outcome=INFO)
    return Note(visible(step.raw), outcome=INFO)


def _data_line(step: Step) -> Note:
    """One line typed after DATA's 354 (a client that sends the message line by line)."""
    if "size" in step.parsed:  # the lone dot after a CRLF: the client recorded the end here
        return Note("End of the message: a line with a single dot after CRLF (<CRLF>.<CRLF>)",
                    (f"{step.parsed['size']} octets of message text before it; the server now "
                     "answers once for the whole message.",), ("RFC 5321 §4.1.1.4",))
    text = step.raw.rstrip(b"\n").removesuffix(b"\r")
    details, refs = [], ["RFC 5321 §4.1.1.4"]
    if step.raw.endswith(b"\n") and not step.raw.endswith(b"\r\n"):
        details.append("This line ends with a bare LF, not CRLF: a '.' on the next line does "
                       "not end the message (SMTP smuggling).")
    if text == b".":
        details.append("A dot that does not follow a CRLF is text, not the end of the message; "
                       "the server removes a dot at the start of a line (§4.5.2).")
        refs.append("RFC 5321 §4.5.2")
    elif text.startswith(b".."):
        details.append("Starts with '..': the client doubled the dot (dot-stuffing) and the "
                       "server removes one (§4.5.2).")
        refs.append("RFC 5321 §4.5.2")
    elif text.startswith(b"."):
        details.append("Starts with a single '.': the server removes that dot (§4.5.2), so the "
                       "text loses a character unless the client doubles it.")
        refs.append("RFC 5321 §4.5.2")
    return Note("Message text, not a command: after 354 every line is part of the message",
                tuple(details), tuple(refs))


def _data(step: Step) -> Note:
    if step.raw.count(b"\n") <= 1:
        return _data_line(step)
    lines = step.raw.split(b"\r\n")
    stuffed = sum(1 for line in lines[:-2] if line.startswith(b".."))
    single = sum(1 for line in lines[:-2] if line.startswith(b".") and not
                 line.startswith(b".."))
    size = step.parsed.get("size", len(step.raw) - 3)
    details = [f"{max(len(lines) - 2, 0)} line(s), {size} octets before the final '.'."]
    if stuffed:
        details.append(f"{stuffed} line(s) start with '..': the client doubled the dot "
                       "(dot-stuffing) and the server removes one (§4.5.2).")
    if single:
        details.append(f"{single} line(s) start with a single '.': the server removes that "
                       "dot too (§4.5.2), so the client forgot to dot-stuff and the text "
                       "lost a character.")
    details.append("Only <CRLF>.<CRLF> ends the message: a bare LF before the dot does not "
                   "(SMTP smuggling).")
    return Note("The message: header, empty line, body, then a line with a single dot",
                tuple(details), ("RFC 5321 §4.1.1.4", "RFC 5322"))


def annotate_step(step: Step, ctx: _Context) -> Note:
    """The note for one step, given what came before (kept in ``ctx``)."""
    if step.direction == EVENT:
        return _event(step, ctx.protocol)
    if step.direction == CLIENT:
        return _client(step, ctx)
    if step.direction == SERVER:
        return _server(step, ctx)
    return Note(visible(step.raw))


def _client(step: Step, ctx: _Context) -> Note:
    if step.kind == "data":
        ctx.last_verb = "<CRLF>.<CRLF>"
        return _data(step)
    line = step.raw.rstrip(b"\r\n").decode("utf-8", "replace")
    if step.parsed.get("ignored"):  # pipelined after STARTTLS/STLS, or after the close
        return Note(f"Not read by the server: {step.parsed['ignored']}",
                    ("Whatever was pipelined before the TLS handshake is thrown away, so a man "
                     "in the middle cannot slip in commands that would run inside TLS "
                     "(CVE-2011-0411).",) if "TLS" in str(step.parsed["ignored"]) else (),
                    outcome=PERMANENT)
    if ctx.continuation or step.kind == "auth":
        return sasl_response(ctx.mechanism, line, ctx.challenge)
    verb = str(step.parsed.get("verb") or line.partition(" ")[0]).upper()
    arg = str(step.parsed.get("arg", line.partition(" ")[2]))
    ctx.last_verb = verb
    if verb == "AUTH":
        ctx.mechanism = arg.strip().partition(" ")[0].upper() or None
        ctx.challenge = ""
    if ctx.protocol == "pop3":
        return pop3_command(verb, arg, ctx.timestamp)
    return smtp_command(verb, arg)


def _server(step: Step, ctx: _Context) -> Note:
    greeting = step.kind == "greeting"
    if ctx.protocol == "pop3":
        note = pop3_reply(step.raw, after=ctx.last_verb, greeting=greeting,
                          mechanism=ctx.mechanism)
        first = step.raw.split(b"\r\n", 1)[0]
        if greeting:
            ts = _TIMESTAMP.search(first.decode("utf-8", "replace"))
            ctx.timestamp = ts.group(0) if ts else None
        ctx.continuation = first.startswith(b"+") and not first.startswith(b"+OK")
    else:
        if "code" in step.parsed:
            code, lines = int(step.parsed["code"]), list(step.parsed.get("lines", [""]))
        else:
            code, lines = parse_smtp_reply(step.raw)
        note = smtp_reply(code, lines, after=ctx.last_verb, greeting=greeting,
                          mechanism=ctx.mechanism, state=step.state_before)
        ctx.continuation = code == 334
    if ctx.continuation:
        ctx.challenge = dict(note.decoded).get("challenge, decoded", "")
    else:  # the SASL exchange, if any, is over
        ctx.mechanism = None
    return note


def annotate(transcript: Transcript, upto: int | None = None) -> list[Note]:
    """One :class:`Note` per step of ``transcript`` (the first ``upto`` steps)."""
    ctx = _Context(transcript.protocol.lower())
    steps = transcript.steps if upto is None else transcript.steps[:upto]
    return [annotate_step(step, ctx) for step in steps]


def rejection_reason(step: Step) -> str:
    """The human part of a refusing reply: without code and enhanced status."""
    first = step.raw.split(b"\r\n", 1)[0].decode("utf-8", "replace")
    if first[:3].isdigit():
        first = first[4:]
        m = _ENHANCED.match(first)
        if m:
            first = first[m.end():].strip()
    elif first.startswith("-ERR"):
        first = first[4:].strip()
    return first
