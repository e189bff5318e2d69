"""What the words on the wire mean: commands, reply codes, status codes, capabilities.

Pure data, each entry with the RFC section that defines it, for :mod:`mailproto.lab.annotate`.
The texts are written for a student reading a transcript, not copied from the RFCs.
"""

from __future__ import annotations

# -- SMTP reply codes (RFC 5321 §4.2) ------------------------------------------------------------

#: RFC 5321 §4.2.1: the first digit says whether the command worked.
SMTP_FIRST_DIGIT = {
    "2": "positive completion: the command worked",
    "3": "positive intermediate: go on, the server waits for more",
    "4": "transient negative: it failed this time; trying again later may work",
    "5": "permanent negative: it failed; sending the same thing again will fail again",
}
#: RFC 5321 §4.2.1: the second digit says what the reply is about.
SMTP_SECOND_DIGIT = {
    "0": "syntax",
    "1": "information",
    "2": "the connection",
    "3": "unspecified (used for authentication, RFC 4954)",
    "4": "unspecified",
    "5": "the mail system",
}
#: code -> (meaning, where it is defined).  Every code mailproto's server sends is here.
SMTP_REPLY_CODES: dict[int, tuple[str, str]] = {
    211: ("System status, or system help reply", "RFC 5321 §4.2.2"),
    214: ("Help message, for a human reader", "RFC 5321 §4.2.2"),
    220: ("Service ready", "RFC 5321 §4.2.2"),
    221: ("Service closing the connection: goodbye", "RFC 5321 §4.2.2"),
    235: ("Authentication succeeded", "RFC 4954 §6"),
    250: ("Requested action okay, completed", "RFC 5321 §4.2.2"),
    251: ("User not local; will forward", "RFC 5321 §4.2.2"),
    252: ("Cannot VRFY the user, but will accept the message and attempt delivery",
          "RFC 5321 §4.2.2, §3.5.3"),
    334: ("Authentication challenge: base64 text, answer with one base64 line", "RFC 4954 §4"),
    354: ("Start mail input; end with <CRLF>.<CRLF>", "RFC 5321 §4.2.2"),
    421: ("Service not available, closing the connection", "RFC 5321 §4.2.2, §3.8"),
    432: ("A password transition is needed", "RFC 4954 §6"),
    450: ("Mailbox unavailable (busy, or blocked for policy reasons): try later",
          "RFC 5321 §4.2.2"),
    451: ("Requested action aborted: local error in processing", "RFC 5321 §4.2.2"),
    452: ("Insufficient system storage, or too many recipients", "RFC 5321 §4.2.2, §4.5.3.1.10"),
    454: ("Temporary authentication failure", "RFC 4954 §6"),
    455: ("Server unable to accommodate the parameters", "RFC 5321 §4.2.2"),
    500: ("Syntax error, command unrecognized (or the line was too long)", "RFC 5321 §4.2.2"),
    501: ("Syntax error in parameters or arguments", "RFC 5321 §4.2.2"),
    502: ("Command not implemented (known, but switched off here)", "RFC 5321 §4.2.2"),
    503: ("Bad sequence of commands: not allowed in this state", "RFC 5321 §4.2.2, §4.1.4"),
    504: ("Command parameter not implemented", "RFC 5321 §4.2.2"),
    530: ("Authentication required", "RFC 4954 §6"),
    534: ("Authentication mechanism is too weak", "RFC 4954 §6"),
    535: ("Authentication credentials invalid", "RFC 4954 §6"),
    538: ("Encryption required for the requested authentication mechanism", "RFC 4954 §6"),
    550: ("Requested action not taken: mailbox unavailable (no such user, or refused by policy)",
          "RFC 5321 §4.2.2"),
    551: ("User not local", "RFC 5321 §4.2.2"),
    552: ("Requested mail action aborted: exceeded storage allocation (too big)",
          "RFC 5321 §4.2.2, RFC 1870"),
    553: ("Requested action not taken: mailbox name not allowed", "RFC 5321 §4.2.2"),
    554: ("Transaction failed (or, in a greeting, no SMTP service here)", "RFC 5321 §4.2.2"),
    555: ("MAIL FROM/RCPT TO parameters not recognized or not implemented", "RFC 5321 §4.2.2"),
}

# -- Enhanced status codes (RFC 3463 class.subject.detail) ---------------------------------------

ENHANCED_CLASS = {
    "2": "success",
    "4": "persistent transient failure: may work later",
    "5": "permanent failure",
}
ENHANCED_SUBJECT = {
    "0": "other or undefined",
    "1": "addressing",
    "2": "mailbox",
    "3": "mail system",
    "4": "network and routing",
    "5": "mail delivery protocol",
    "6": "message content or media",
    "7": "security or policy",
}
#: "subject.detail" -> (meaning, section).  RFC 3463 §3 unless another RFC is named.
ENHANCED_DETAIL: dict[str, tuple[str, str]] = {
    "0.0": ("other undefined status", "RFC 3463 §3.1"),
    "1.0": ("other address status", "RFC 3463 §3.2"),
    "1.1": ("bad destination mailbox address: no such user", "RFC 3463 §3.2"),
    "1.2": ("bad destination system address", "RFC 3463 §3.2"),
    "1.3": ("bad destination mailbox address syntax", "RFC 3463 §3.2"),
    "1.4": ("destination mailbox address ambiguous", "RFC 3463 §3.2"),
    "1.5": ("destination address valid", "RFC 3463 §3.2"),
    "1.6": ("destination mailbox has moved", "RFC 3463 §3.2"),
    "1.7": ("bad sender's mailbox address syntax", "RFC 3463 §3.2"),
    "1.8": ("bad sender's system address", "RFC 3463 §3.2"),
    "2.0": ("other or undefined mailbox status", "RFC 3463 §3.3"),
    "2.1": ("mailbox disabled, not accepting messages", "RFC 3463 §3.3"),
    "2.2": ("mailbox full", "RFC 3463 §3.3"),
    "2.3": ("message length exceeds administrative limit", "RFC 3463 §3.3"),
    "2.4": ("mailing list expansion problem", "RFC 3463 §3.3"),
    "3.0": ("other or undefined mail system status", "RFC 3463 §3.4"),
    "3.1": ("mail system full", "RFC 3463 §3.4"),
    "3.2": ("system not accepting network messages (shutting down)", "RFC 3463 §3.4"),
    "3.3": ("system not capable of selected features", "RFC 3463 §3.4"),
    "3.4": ("message too big for system", "RFC 3463 §3.4"),
    "3.5": ("system incorrectly configured", "RFC 3463 §3.4"),
    "4.0": ("other or undefined network or routing status", "RFC 3463 §3.5"),
    "4.1": ("no answer from host", "RFC 3463 §3.5"),
    "4.2": ("bad connection (here: the idle timer fired)", "RFC 3463 §3.5"),
    "4.3": ("directory server failure", "RFC 3463 §3.5"),
    "4.4": ("unable to route", "RFC 3463 §3.5"),
    "4.5": ("mail system congestion", "RFC 3463 §3.5"),
    "4.6": ("routing loop detected", "RFC 3463 §3.5"),
    "4.7": ("delivery time expired", "RFC 3463 §3.5"),
    "5.0": ("other or undefined protocol status", "RFC 3463 §3.6"),
    "5.1": ("invalid command (or not allowed now)", "RFC 3463 §3.6"),
    "5.2": ("syntax error", "RFC 3463 §3.6"),
    "5.3": ("too many recipients", "RFC 3463 §3.6"),
    "5.4": ("invalid command arguments", "RFC 3463 §3.6"),
    "5.5": ("wrong protocol version", "RFC 3463 §3.6"),
    "5.6": ("authentication exchange line is too long", "RFC 4954 §6"),
    "6.0": ("other or undefined media error", "RFC 3463 §3.7"),
    "6.1": ("media not supported", "RFC 3463 §3.7"),
    "6.2": ("conversion required and prohibited", "RFC 3463 §3.7"),
    "6.3": ("conversion required but not supported", "RFC 3463 §3.7"),
    "6.4": ("conversion with loss performed", "RFC 3463 §3.7"),
    "6.5": ("conversion failed", "RFC 3463 §3.7"),
    "6.7": ("non-ASCII address not permitted without SMTPUTF8", "RFC 6531 §3.7.4"),
    "6.8": ("UTF-8 string reply required, but not permitted by the client", "RFC 6531 §3.7.4"),
    "7.0": ("other or undefined security status", "RFC 3463 §3.8"),
    "7.1": ("delivery not authorized, message refused (e.g. relaying denied)", "RFC 3463 §3.8"),
    "7.2": ("mailing list expansion prohibited", "RFC 3463 §3.8"),
    "7.3": ("security conversion required but not possible", "RFC 3463 §3.8"),
    "7.4": ("security features not supported", "RFC 3463 §3.8"),
    "7.5": ("cryptographic failure", "RFC 3463 §3.8"),
    "7.6": ("cryptographic algorithm not supported", "RFC 3463 §3.8"),
    "7.7": ("message integrity failure", "RFC 3463 §3.8"),
    "7.8": ("authentication credentials invalid", "RFC 4954 §6"),
    "7.9": ("authentication mechanism is too weak", "RFC 4954 §6"),
    "7.10": ("encryption needed", "RFC 4954 §6"),
    "7.11": ("encryption required for the requested authentication mechanism", "RFC 4954 §6"),
    "7.12": ("a password transition is needed", "RFC 4954 §6"),
}

# -- SMTP commands (RFC 5321 §4.1.1) -------------------------------------------------------------

#: verb -> (what it does, where it is defined)
SMTP_COMMANDS: dict[str, tuple[str, str]] = {
    "HELO": ("Identify the client by its host name (plain SMTP). The name can be a lie; "
             "servers log it and may check it.", "RFC 5321 §4.1.1.1"),
    "EHLO": ("Identify the client and ask for the list of ESMTP extensions the server "
             "supports.", "RFC 5321 §4.1.1.1"),
    "MAIL": ("Start a mail transaction with the envelope sender (reverse-path): where bounces "
             "go. It is independent of the From: header the reader sees; <> is the null sender "
             "of a bounce.", "RFC 5321 §4.1.1.2"),
    "RCPT": ("Name one envelope recipient (forward-path). Repeat for each recipient: one DATA "
             "then reaches them all, Bcc included.", "RFC 5321 §4.1.1.3"),
    "DATA": ("All recipients are named: the message itself follows, after a 354, ended by a "
             "line holding a single dot.", "RFC 5321 §4.1.1.4"),
    "RSET": ("Abort the current mail transaction; the server forgets sender and recipients.",
             "RFC 5321 §4.1.1.5"),
    "VRFY": ("Ask whether a user name is a mailbox. Usually disabled: it would tell spammers "
             "which addresses exist.", "RFC 5321 §4.1.1.6, §7.3"),
    "EXPN": ("Ask for the members of a mailing list. Usually disabled, for the same reason as "
             "VRFY.", "RFC 5321 §4.1.1.7, §7.3"),
    "HELP": ("Ask for help text, for a human.", "RFC 5321 §4.1.1.8"),
    "NOOP": ("Do nothing; the server answers 250. Useful to check the line is alive.",
             "RFC 5321 §4.1.1.9"),
    "QUIT": ("Close the session; the server answers 221 and closes the connection.",
             "RFC 5321 §4.1.1.10"),
    "AUTH": ("Authenticate with a SASL mechanism; the exchange that follows is base64 lines "
             "(334 challenges, client responses).", "RFC 4954 §4"),
    "STARTTLS": ("Switch this connection to TLS; after the 220 both sides start a TLS "
                 "handshake and the session starts over.", "RFC 3207 §4"),
    "BDAT": ("Send the message in chunks of a stated size (CHUNKING).", "RFC 3030 §2"),
}
#: MAIL FROM / RCPT TO parameters.
SMTP_PARAMETERS: dict[str, tuple[str, str]] = {
    "SIZE": ("declares the message size in octets, so the server can refuse early",
             "RFC 1870 §6"),
    "BODY": ("7BIT or 8BITMIME: whether the body uses 8-bit bytes", "RFC 6152 §2"),
    "SMTPUTF8": ("the addresses or headers use UTF-8", "RFC 6531 §3.4"),
    "AUTH": ("the identity that originally submitted the message", "RFC 4954 §5"),
}
#: EHLO reply keywords (RFC 5321 §4.1.1.1: one extension per line after the first).
EHLO_KEYWORDS: dict[str, tuple[str, str]] = {
    "PIPELINING": ("the client may send several commands before reading the replies",
                   "RFC 2920"),
    "SIZE": ("the largest message accepted, in octets", "RFC 1870"),
    "8BITMIME": ("8-bit message bodies are accepted", "RFC 6152"),
    "ENHANCEDSTATUSCODES": ("replies carry a class.subject.detail status code", "RFC 2034"),
    "SMTPUTF8": ("UTF-8 addresses and headers are accepted", "RFC 6531"),
    "AUTH": ("the SASL mechanisms offered for AUTH", "RFC 4954 §3"),
    "STARTTLS": ("the connection can be switched to TLS", "RFC 3207"),
    "HELP": ("the HELP command is available", "RFC 5321 §4.1.1.8"),
    "VRFY": ("the VRFY command is enabled", "RFC 5321 §4.1.1.6"),
    "CHUNKING": ("BDAT may be used instead of DATA", "RFC 3030"),
    "DSN": ("delivery status notifications can be requested", "RFC 3461"),
}

# -- POP3 (RFC 1939, RFC 2449, RFC 5034, RFC 2595, RFC 6856) -------------------------------------

POP3_COMMANDS: dict[str, tuple[str, str]] = {
    "USER": ("Name the mailbox to log in to; PASS follows.", "RFC 1939 §7"),
    "PASS": ("Send the password, in clear text: anyone on the path can read it unless the "
             "connection uses TLS.", "RFC 1939 §7"),
    "APOP": ("Log in without sending the password: name and MD5(timestamp + secret).",
             "RFC 1939 §7"),
    "AUTH": ("Authenticate with a SASL mechanism (base64 lines after '+ ').", "RFC 5034 §4"),
    "STAT": ("Mailbox statistics: number of messages and their total size in octets.",
             "RFC 1939 §5"),
    "LIST": ("The size of message n, or of every message (a multi-line reply).",
             "RFC 1939 §5"),
    "RETR": ("The whole text of message n, as a multi-line reply ended by a dot.",
             "RFC 1939 §5"),
    "DELE": ("Mark message n deleted. Nothing is removed until QUIT commits it; RSET undoes.",
             "RFC 1939 §5"),
    "NOOP": ("Do nothing; the server answers +OK.", "RFC 1939 §5"),
    "RSET": ("Undo every DELE mark of this session.", "RFC 1939 §5"),
    "QUIT": ("End the session. In TRANSACTION the server enters UPDATE and removes the marked "
             "messages; in AUTHORIZATION it removes nothing.", "RFC 1939 §6"),
    "TOP": ("The header and the first m body lines of message n.", "RFC 1939 §7"),
    "UIDL": ("The unique id of message n, or of every message: stable across sessions, "
             "unlike message numbers.", "RFC 1939 §7"),
    "CAPA": ("List the server's capabilities.", "RFC 2449 §5"),
    "STLS": ("Switch this connection to TLS; the session starts over.", "RFC 2595 §4"),
    "UTF8": ("Switch the session to UTF-8.", "RFC 6856 §2"),
}
#: RESP-CODES: the bracketed word after +OK/-ERR tells a program why (RFC 2449 §8, RFC 3206).
POP3_RESP_CODES: dict[str, tuple[str, str]] = {
    "IN-USE": ("the mailbox is locked: another session has it open", "RFC 2449 §8.1.1"),
    "LOGIN-DELAY": ("logged in too soon after the last login", "RFC 2449 §8.1.2"),
    "SYS/TEMP": ("a temporary system problem: try again later", "RFC 3206 §4"),
    "SYS/PERM": ("a permanent system problem: trying again will not help", "RFC 3206 §4"),
    "AUTH": ("the credentials were wrong (not a system problem)", "RFC 3206 §5"),
    "UTF8": ("the mailbox needs UTF-8 mode", "RFC 6856 §2"),
}
CAPA_TAGS: dict[str, tuple[str, str]] = {
    "TOP": ("TOP is available", "RFC 2449 §6.1"),
    "USER": ("USER/PASS login is available", "RFC 2449 §6.2"),
    "SASL": ("the SASL mechanisms offered for AUTH", "RFC 2449 §6.3"),
    "RESP-CODES": ("-ERR replies carry [bracketed] codes", "RFC 2449 §6.4"),
    "LOGIN-DELAY": ("minimum seconds between logins", "RFC 2449 §6.5"),
    "PIPELINING": ("several commands may be sent before reading the replies", "RFC 2449 §6.6"),
    "EXPIRE": ("how long messages are kept", "RFC 2449 §6.7"),
    "UIDL": ("UIDL is available", "RFC 2449 §6.8"),
    "IMPLEMENTATION": ("the server software", "RFC 2449 §6.9"),
    "STLS": ("the connection can be switched to TLS", "RFC 2595 §4"),
    "AUTH-RESP-CODE": ("[AUTH] marks a wrong password", "RFC 3206 §5"),
    "UTF8": ("UTF-8 mode is available", "RFC 6856 §2"),
}
