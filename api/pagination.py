"""Shared list helpers: opaque signed cursors, capped limits, allow-listed sorts, time ranges.

Every list route uses these, so no route can be asked for an unbounded page, an unbounded
time range, or an ordering by a column it did not list.
"""

# No `from __future__ import annotations`: sort_param's closure annotations must be real
# objects, because FastAPI cannot resolve closure variables from strings.

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import AwareDatetime, BaseModel

from api.errors import Unprocessable

T = TypeVar("T")
MAX_CURSOR_CHARS = 512


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next one."""

    items: list[T]
    next_cursor: str | None = None


def _cursor_mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), b"kizuna-cursor" + payload, hashlib.sha256).digest()[:12]


def encode_cursor(secret: str, values: Sequence[Any]) -> str:
    """An opaque, tamper-evident cursor for the last row's sort key."""
    payload = json.dumps(
        [v.isoformat() if isinstance(v, datetime) else v for v in values], separators=(",", ":")
    ).encode()
    return base64.urlsafe_b64encode(_cursor_mac(secret, payload) + payload).decode().rstrip("=")


def decode_cursor(secret: str, cursor: str) -> list[Any]:
    """The values inside a cursor made by `encode_cursor`, or 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        mac, payload = raw[:12], raw[12:]
        if not hmac.compare_digest(mac, _cursor_mac(secret, payload)):
            raise ValueError("bad signature")
        values = json.loads(payload)
        if not isinstance(values, list):
            raise ValueError("not a list")
        return values
    except ValueError as exc:
        raise Unprocessable("invalid cursor") from exc


@dataclass(frozen=True)
class PageParams:
    """A capped `limit` and the decoded `cursor` (None on the first page)."""

    limit: int
    after: list[Any] | None
    secret: str

    def page(self, rows: list[T], key: Callable[[T], Sequence[Any]]) -> Page[T]:
        """A page from rows fetched with `limit + 1` (the extra row says there is more)."""
        more = len(rows) > self.limit
        items = rows[: self.limit]
        cursor = encode_cursor(self.secret, key(items[-1])) if more and items else None
        return Page[T](items=items, next_cursor=cursor)


def page_params(
    request: Request,
    limit: Annotated[int | None, Query(ge=1, description="Page size (capped).")] = None,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> PageParams:
    """Page size (default and maximum from settings) and the position to continue from."""
    config = request.app.state.settings.api
    if limit is not None and limit > config.max_page_size:
        raise Unprocessable(f"limit must be at most {config.max_page_size}")
    secret = request.app.state.settings.secret_key.get_secret_value()
    after = decode_cursor(secret, cursor) if cursor else None
    return PageParams(limit=limit or config.default_page_size, after=after, secret=secret)


Pagination = Annotated[PageParams, Depends(page_params)]


@dataclass(frozen=True)
class Sort:
    """A validated sort: a column from the route's allow-list and a direction."""

    field: str
    descending: bool


def sort_param(allowed: Sequence[str], default: str) -> Any:
    """A dependency reading `sort=field` or `sort=-field`, refusing fields not in `allowed`."""
    pattern = "^-?(" + "|".join(allowed) + ")$"

    def dependency(
        sort: Annotated[
            str, Query(pattern=pattern, description=f"One of {', '.join(allowed)}; '-' = desc.")
        ] = default,
    ) -> Sort:
        return Sort(field=sort.lstrip("-"), descending=sort.startswith("-"))

    return Depends(dependency)


@dataclass(frozen=True)
class TimeRange:
    """A bounded, ordered, timezone-aware [since, until) range."""

    since: datetime
    until: datetime


def time_range(
    request: Request,
    since: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    until: Annotated[AwareDatetime | None, Query(alias="to")] = None,
) -> TimeRange:
    """`from`/`to` with timezones; default the last day; from <= to; span capped by settings."""
    max_span = timedelta(days=request.app.state.settings.api.max_time_range_days)
    end = until or datetime.now(UTC)
    start = since or end - timedelta(days=1)
    if start > end:
        raise Unprocessable("'from' must not be after 'to'")
    if end - start > max_span:
        raise Unprocessable(f"time range is capped at {max_span.days} days")
    return TimeRange(since=start, until=end)


TimeRangeDep = Annotated[TimeRange, Depends(time_range)]
