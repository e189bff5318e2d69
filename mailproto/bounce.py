"""Delivery status notifications: the bounce a sender gets when mail cannot be delivered
(RFC 3464 multipart/report, RFC 3462 report type, sent with the null reverse-path ``<>``,
RFC 5321 §4.5.5, so that a bounce never bounces)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime


@dataclass(frozen=True)
class Failure:
    recipient: str
    status: str  # enhanced status code, e.g. "5.1.1"
    diagnostic: str  # the remote reply, e.g. "550 5.1.1 <bob@b.test>: User unknown"
    remote_mta: str = ""


def build_bounce(*, hostname: str, sender: str, failures: list[Failure], original: bytes,
                 queue_id: str, now: float, arrival: float) -> bytes:
    """The DSN as LF-ended bytes, ready for a Maildir (with ``Return-Path: <>``)."""
    boundary = f"{queue_id}.bounce/{hostname}"
    date = format_datetime(datetime.fromtimestamp(now, timezone.utc))
    arrived = format_datetime(datetime.fromtimestamp(arrival, timezone.utc))
    header_end = original.find(b"\n\n")
    headers = original if header_end < 0 else original[: header_end + 1]
    human = "\n".join(f"<{f.recipient}>: {f.diagnostic}" for f in failures)
    per_recipient = "\n".join(
        f"Final-Recipient: rfc822; {f.recipient}\nAction: failed\nStatus: {f.status}\n"
        + (f"Remote-MTA: dns; {f.remote_mta}\n" if f.remote_mta else "")
        + f"Diagnostic-Code: smtp; {f.diagnostic}\n" for f in failures)
    text = (
        f"Return-Path: <>\n"
        f"Received: by {hostname} (mailproto) id {queue_id}; {date}\n"
        f"Date: {date}\n"
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>\n"
        f"To: <{sender}>\n"
        f"Subject: Undelivered Mail Returned to Sender\n"
        f"Message-ID: <{queue_id}.bounce@{hostname}>\n"
        f"Auto-Submitted: auto-replied\n"
        f"MIME-Version: 1.0\n"
        f"Content-Type: multipart/report; report-type=delivery-status;\n"
        f"\tboundary=\"{boundary}\"\n"
        f"\n"
        f"This is a MIME-encapsulated message.\n"
        f"\n"
        f"--{boundary}\n"
        f"Content-Description: Notification\n"
        f"Content-Type: text/plain; charset=us-ascii\n"
        f"\n"
        f"This is the mail system at host {hostname}.\n"
        f"\n"
        f"I'm sorry to have to inform you that your message could not\n"
        f"be delivered to one or more recipients.\n"
        f"\n"
        f"{human}\n"
        f"\n"
        f"--{boundary}\n"
        f"Content-Description: Delivery report\n"
        f"Content-Type: message/delivery-status\n"
        f"\n"
        f"Reporting-MTA: dns; {hostname}\n"
        f"X-Mailproto-Queue-ID: {queue_id}\n"
        f"Arrival-Date: {arrived}\n"
        f"\n"
        f"{per_recipient}"
        f"\n"
        f"--{boundary}\n"
        f"Content-Description: Undelivered Message Headers\n"
        f"Content-Type: text/rfc822-headers\n"
        f"\n"
    )
    return text.encode("utf-8") + headers + f"\n--{boundary}--\n".encode()
