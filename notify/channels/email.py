"""Email through any SMTP relay; the Message-ID is derived from the notification, for dedup."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import unquote, urlsplit

from notify.errors import PermanentDeliveryError, TransientDeliveryError
from notify.models import Outgoing


def message_id(message: Outgoing, from_address: str) -> str:
    """A stable Message-ID: a retried send of the same notification carries the same one."""
    domain = from_address.rsplit("@", 1)[-1]
    return f"<kizuna-{message.notification_id}.{message.idempotency_key}@{domain}>"


class EmailChannel:
    """Sends plain-text mail; 4xx/connection problems retry, 5xx and bad addresses fail."""

    def __init__(self, smtp_url: str, from_address: str, timeout_s: float) -> None:
        parts = urlsplit(smtp_url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("smtp_url must look like smtp://user:password@host:25")
        self._host = parts.hostname
        self._port = parts.port or (465 if parts.scheme == "smtps" else 25)
        self._tls = parts.scheme == "smtps"
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._from = from_address
        self._timeout = timeout_s

    def compose(self, message: Outgoing) -> EmailMessage:
        """The email for a notification."""
        if not message.email:
            raise PermanentDeliveryError("recipient has no email address")
        mail = EmailMessage()
        mail["From"] = self._from
        mail["To"] = message.email
        mail["Subject"] = message.title
        mail["Message-ID"] = message_id(message, self._from)
        mail["Date"] = format_datetime(message.created_at)
        mail["X-Kizuna-Idempotency-Key"] = message.idempotency_key
        mail.set_content(message.body)
        return mail

    def deliver(self, message: Outgoing) -> None:
        """Hand the mail to the relay."""
        mail = self.compose(message)
        smtp_class = smtplib.SMTP_SSL if self._tls else smtplib.SMTP
        try:
            with smtp_class(self._host, self._port, timeout=self._timeout) as smtp:
                if self._user and self._password:
                    smtp.login(self._user, self._password)
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(400 <= code < 500 for code in codes):
                raise TransientDeliveryError("recipient temporarily refused") from exc
            raise PermanentDeliveryError("recipient refused") from exc
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise TransientDeliveryError(f"smtp {exc.smtp_code}") from exc
            raise PermanentDeliveryError(f"smtp {exc.smtp_code}") from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise TransientDeliveryError(f"smtp unavailable: {type(exc).__name__}") from exc
