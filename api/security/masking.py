"""Masking of personal data for support views and anything that is not an operator."""

from __future__ import annotations

MASK = "•••"


def mask_email(email: str | None) -> str | None:
    """`t•••@example.com`: enough to recognise, not enough to use."""
    if not email:
        return email
    local, _, domain = email.partition("@")
    return f"{local[:1]}{MASK}@{domain}" if domain else MASK


def mask_phone(phone: str | None) -> str | None:
    """Only the last two digits stay visible."""
    if not phone:
        return phone
    digits = [c for c in phone if c.isdigit()]
    return MASK + "".join(digits[-2:])


def mask_name(name: str | None) -> str | None:
    """Only the first character stays visible."""
    if not name:
        return name
    return name[:1] + MASK


def mask_address(address: str | None) -> str | None:
    """Addresses are hidden entirely."""
    return MASK if address else address
