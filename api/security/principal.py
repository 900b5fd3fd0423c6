"""Who is calling: a user with a full session, or an integration's API key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["operator", "support", "customer", "integration"]
HUMAN_ROLES: tuple[Role, ...] = ("operator", "support", "customer")
STAFF_ROLES: tuple[Role, ...] = ("operator", "support")
API_KEY_SCOPES = ("read", "write")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    kind: Literal["user", "api_key"]
    public_id: str
    role: Role
    user_id: int | None = None
    customer_id: int | None = None
    session_id: int | None = None
    api_key_id: int | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_staff(self) -> bool:
        """Operators and support staff see every device."""
        return self.role in STAFF_ROLES

    @property
    def sees_personal_data(self) -> bool:
        """Only operators see personal data unmasked; support and integrations see it masked."""
        return self.role == "operator"
