"""Errors of the notify package.

NotifyError
├── DeliveryError                a channel could not deliver a notification
│   ├── TransientDeliveryError   try again later (receiver down, timeout, 5xx, 429)
│   └── PermanentDeliveryError   retrying cannot help (bad address, 4xx, refused URL)
├── PreferenceError              a preference or profile change is not acceptable
│   └── DeviceNotShared          the device is not one this person shares
└── FeedError
    └── PostNotFound             no such post in this person's feed
"""

from __future__ import annotations


class NotifyError(Exception):
    """Base of every notify error."""


class DeliveryError(NotifyError):
    """A channel could not deliver a notification."""


class TransientDeliveryError(DeliveryError):
    """The receiver may accept the same notification later: retry with backoff."""


class PermanentDeliveryError(DeliveryError):
    """The notification can never be delivered as addressed: mark it failed."""


class PreferenceError(NotifyError):
    """A preference or profile change is not acceptable (message says why)."""


class DeviceNotShared(PreferenceError):
    """The device does not exist or this person does not share it (never says whose)."""


class FeedError(NotifyError):
    """A feed operation could not be done."""


class PostNotFound(FeedError):
    """No such post in this person's feed (also when it belongs to someone else)."""
