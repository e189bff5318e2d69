"""SASL mechanisms and the APOP digest, shared by SMTP (RFC 4954) and POP3 (RFC 5034, RFC 1939 §7).

Server side: a :class:`SASLExchange` is a tiny sans-I/O state machine.  The protocol core feeds it
the decoded client responses and gets back a :class:`Challenge`, :class:`Success` or
:class:`Failure`; it never sees base64 or the protocol's framing (``334 `` / ``+ ``), which the
callers add.  Client side: plain functions that build the responses.

Mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login, as every MTA speaks it) and
CRAM-MD5 (RFC 2195).  All three need the plain secret on the server side (CRAM-MD5 and APOP
cannot work otherwise: the lab says so and shows the trade-off).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Generator
from dataclasses import dataclass

from .errors import LocalProtocolError

MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")
#: Mechanisms that send the password itself (base64 is an encoding, not encryption).
PLAINTEXT_MECHANISMS = frozenset({"PLAIN", "LOGIN"})

SecretLookup = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Challenge:
    """Send this challenge (raw bytes; the protocol base64-encodes it) and wait for a response."""

    data: bytes


@dataclass(frozen=True)
class Success:
    """Authenticated as ``user``."""

    user: str


@dataclass(frozen=True)
class Failure:
    """The exchange ended without success.

    ``malformed`` means the client broke the SASL syntax or cancelled (SMTP 501, RFC 4954 §4);
    otherwise the credentials were wrong (SMTP 535 5.7.8, POP3 ``-ERR [AUTH]``).
    """

    reason: str
    malformed: bool = False
    cancelled: bool = False
    #: The user name tried, when the response got that far (for the failure penalty).
    user: str | None = None


Result = Challenge | Success | Failure


def b64decode_strict(text: str | bytes) -> bytes | None:
    """Decode base64 as RFC 4954 §4 wants it: strict alphabet and padding, or None."""
    if isinstance(text, str):
        try:
            text = text.encode("ascii")
        except UnicodeEncodeError:
            return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_password(lookup: SecretLookup, user: str, password: str) -> bool:
    secret = lookup(user)
    # Compare even for an unknown user so the time taken does not reveal which names exist.
    expected = secret if secret is not None else "\0unknown-user\0"
    # surrogateescape: a password line with bytes that are not UTF-8 is just a wrong password.
    ok = hmac.compare_digest(expected.encode("utf-8", "surrogateescape"),
                             password.encode("utf-8", "surrogateescape"))
    return ok and secret is not None


def check_password(lookup: SecretLookup, user: str, password: str) -> bool:
    """True if ``password`` is ``user``'s secret (POP3 USER/PASS, RFC 1939 §7), compared in
    constant time, and as long for an unknown user as for a known one."""
    return _check_password(lookup, user, password)


class SASLExchange:
    """One server-side SASL exchange for ``mechanism`` (upper-case name)."""

    def __init__(self, mechanism: str, lookup: SecretLookup, challenge_token: str = "") -> None:
        self.mechanism = mechanism.upper()
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"unsupported SASL mechanism {mechanism!r}")
        self._lookup = lookup
        #: For CRAM-MD5: the ``<pid.clock@host>`` challenge, made by the caller (it owns the clock).
        self._token = challenge_token
        self._user: str | None = None
        self.done = False

    # -- the exchange -------------------------------------------------------------------
    def start(self, initial: str | None) -> Result:
        """Begin, with the initial response if the client sent one (``=`` means empty)."""
        if self.mechanism == "CRAM-MD5":
            if initial is not None:  # RFC 2195: the server speaks first
                return self._fail("CRAM-MD5 does not take an initial response", malformed=True)
            return Challenge(self._token.encode("ascii"))
        if initial is None:
            if self.mechanism == "PLAIN":
                return Challenge(b"")
            return Challenge(b"Username:")
        return self.respond(initial)

    def respond(self, line: str) -> Result:
        """Feed one client response line (still base64, as it came off the wire)."""
        if self.done:
            raise RuntimeError("exchange already finished")
        if line.strip() == "*":
            return self._fail("authentication cancelled", malformed=True, cancelled=True)
        raw = b"" if line.strip() == "=" else b64decode_strict(line.strip())
        if raw is None:
            return self._fail("cannot decode the response (not base64)", malformed=True)
        if self.mechanism == "PLAIN":
            return self._plain(raw)
        if self.mechanism == "LOGIN":
            return self._login(raw)
        return self._cram_md5(raw)

    # -- mechanisms ----------------------------------------------------------------------
    def _plain(self, raw: bytes) -> Result:
        # RFC 4616 §2: message = [authzid] NUL authcid NUL passwd
        parts = raw.split(b"\0")
        if len(parts) != 3:
            return self._fail("PLAIN response is not authzid NUL authcid NUL password",
                              malformed=True)
        try:
            authzid, authcid, passwd = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            return self._fail("PLAIN response is not UTF-8", malformed=True)
        if authzid and authzid != authcid:
            return self._fail("authorization identity differs from authentication identity",
                              user=authcid)
        return self._verify(authcid, passwd)

    def _login(self, raw: bytes) -> Result:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return self._fail("LOGIN response is not UTF-8", malformed=True)
        if self._user is None:
            self._user = text
            return Challenge(b"Password:")
        return self._verify(self._user, text)

    def _cram_md5(self, raw: bytes) -> Result:
        # RFC 2195 §2: response = user SP hex(HMAC-MD5(secret, challenge))
        try:
            user, _, digest = raw.decode("utf-8").rpartition(" ")
        except UnicodeDecodeError:
            return self._fail("CRAM-MD5 response is not UTF-8", malformed=True)
        if not user or len(digest) != 32:
            return self._fail("CRAM-MD5 response is not 'user digest'", malformed=True)
        secret = self._lookup(user)
        expected = cram_md5_digest(secret or "\0unknown-user\0", self._token.encode("ascii"))
        if secret is not None and hmac.compare_digest(expected, digest.lower()):
            return self._succeed(user)
        return self._fail("wrong user name or password", user=user)

    # -- helpers -------------------------------------------------------------------------
    def _verify(self, user: str, password: str) -> Result:
        if _check_password(self._lookup, user, password):
            return self._succeed(user)
        return self._fail("wrong user name or password", user=user)

    def _succeed(self, user: str) -> Success:
        self.done = True
        return Success(user)

    def _fail(self, reason: str, malformed: bool = False, cancelled: bool = False,
              user: str | None = None) -> Failure:
        self.done = True
        return Failure(reason, malformed=malformed, cancelled=cancelled, user=user)


# -- digests and client responses ---------------------------------------------------------
def cram_md5_digest(secret: str, challenge: bytes) -> str:
    """RFC 2195: lower-case hex of HMAC-MD5 keyed with the secret over the challenge."""
    return hmac.new(secret.encode("utf-8"), challenge, hashlib.md5).hexdigest()


def apop_digest(timestamp: str, secret: str) -> str:
    """RFC 1939 §7: lower-case hex MD5 of the greeting's timestamp followed by the secret."""
    return hashlib.md5((timestamp + secret).encode("utf-8", "surrogateescape")).hexdigest()


def plain_response(user: str, password: str, authzid: str = "") -> str:
    """Base64 of ``authzid NUL user NUL password`` (RFC 4616)."""
    return b64encode(f"{authzid}\0{user}\0{password}".encode())


def cram_md5_response(user: str, password: str, challenge_b64: str) -> str:
    """The base64 answer to a CRAM-MD5 challenge as it came off the wire."""
    challenge = base64.b64decode(challenge_b64)
    return b64encode(f"{user} {cram_md5_digest(password, challenge)}".encode())


def check_apop(lookup: SecretLookup, user: str, timestamp: str, digest: str) -> bool:
    """True if ``digest`` is the APOP digest of ``user``'s secret over ``timestamp``."""
    secret = lookup(user)
    expected = apop_digest(timestamp, secret or "\0unknown-user\0")
    return secret is not None and hmac.compare_digest(expected, digest.lower())


def client_steps(mechanism: str, user: str, password: str,
                 initial_response: bool | None = None) -> Generator[str, str, None]:
    """The client's side of a SASL exchange, one line at a time, as a generator — the same for
    SMTP AUTH (RFC 4954 §4, challenges after ``334``) and POP3 AUTH (RFC 5034 §4, after ``+``).

    The first ``next()`` gives the AUTH argument: the mechanism and, if sent at once, the
    initial response.  Then ``send(challenge)`` with each challenge's base64 text gives the
    base64 line to answer with.  PLAIN (RFC 4616) uses an initial response unless told not to;
    LOGIN answers the user name then the password; CRAM-MD5 (RFC 2195 §2) answers
    ``user hex(HMAC-MD5(password, challenge))`` to the server's challenge.
    """
    mech = mechanism.upper()
    for text, what in ((user, "user name"), (password, "password")):
        # CR or LF would end the line early; NUL would split a PLAIN response differently.
        if any(ch in text for ch in "\r\n\0"):
            raise LocalProtocolError(f"the {what} contains CR, LF or NUL")
    if mech == "PLAIN":
        response = plain_response(user, password)
        if initial_response is None or initial_response:
            yield f"PLAIN {response}"
        else:
            yield "PLAIN"
            yield response
    elif mech == "LOGIN":
        user_b64 = b64encode(user.encode("utf-8"))
        if initial_response:
            yield f"LOGIN {user_b64}"
        else:
            yield "LOGIN"
            yield user_b64
        yield b64encode(password.encode("utf-8"))
    elif mech == "CRAM-MD5":
        challenge = yield "CRAM-MD5"  # the server speaks first: no initial response
        yield cram_md5_response(user, password, challenge)
    else:
        raise LocalProtocolError(f"unsupported SASL mechanism {mechanism!r} "
                                 f"(have {', '.join(MECHANISMS)})")
