"""The mail seam: how account notices (password resets, contact changes) leave the system."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import structlog

log = structlog.get_logger(__name__)


class MailSender(Protocol):
    """Delivers one plain-text email."""

    async def send(self, to: str, subject: str, body: str) -> None:
        """Send `body` to `to`; raise on failure."""
        ...


class SmtpMailSender:
    """Sends through an SMTP relay given as smtp://host:port (stdlib smtplib, off the loop)."""

    def __init__(self, smtp_url: str, from_address: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(smtp_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 25
        self._from = from_address
        self._timeout_s = timeout_s

    async def send(self, to: str, subject: str, body: str) -> None:
        """Send one message."""
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        await asyncio.to_thread(self._send_blocking, message)

    def _send_blocking(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self._host, self._port, timeout=self._timeout_s) as smtp:
            smtp.send_message(message)


class MailDirSender:
    """Development fallback without SMTP: writes each message as a file under `folder`."""

    def __init__(self, folder: Path, from_address: str) -> None:
        self._folder = folder
        self._from = from_address

    async def send(self, to: str, subject: str, body: str) -> None:
        """Write one message file."""
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        self._folder.mkdir(parents=True, exist_ok=True)
        name = f"{asyncio.get_running_loop().time():.6f}.eml"
        await asyncio.to_thread((self._folder / name).write_bytes, bytes(message))
        log.info("mail.written_to_folder", folder=str(self._folder))
