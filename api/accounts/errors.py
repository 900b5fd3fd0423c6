"""Errors of the accounts service; the API maps each to its status.

AccountsError (api.errors.ApiError)
├── InvalidCredentials (401): wrong identifier, password or code (never says which)
├── InvalidToken (401): forged, expired, revoked or reused token
├── ReauthenticationFailed (403): password or code wrong on a sensitive change
├── MfaRequired (403): the role requires two-factor authentication
├── Throttled (429): too many failures for this identifier or address
├── UserNotFound (404)
└── AccountConflict (409): the email is already used
"""

from __future__ import annotations

from api.errors import Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized


class AccountsError(Exception):
    """Base of every accounts error (mixed into the matching API error)."""


class InvalidCredentials(AccountsError, Unauthorized):
    """Identifier, password or one-time code is wrong; deliberately not saying which."""

    title = "Invalid credentials"


class InvalidToken(AccountsError, Unauthorized):
    """A token is forged, expired, revoked or already used."""

    title = "Invalid or expired token"


class ReauthenticationFailed(AccountsError, Forbidden):
    """A sensitive change was attempted without the right password or one-time code."""

    title = "Re-authentication failed"


class MfaRequired(AccountsError, Forbidden):
    """This role must use two-factor authentication."""

    title = "Two-factor authentication required"


class Throttled(AccountsError, TooManyRequests):
    """Too many failed attempts; try again later."""


class UserNotFound(AccountsError, NotFound):
    """No such user, or not visible to the caller."""


class AccountConflict(AccountsError, Conflict):
    """The email address is already used by another account."""
