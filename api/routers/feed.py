"""The friend feed: a customer's timeline of posts from their products, read state, reactions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel

from api.audit import AuditAction
from api.audit_trail import Trail, audited
from api.deps import CustomerOnly, SyncDbConn
from api.errors import NotFound
from api.pagination import Pagination, encode_cursor
from notify import service
from notify.errors import PostNotFound
from notify.models import FeedPost, ReactionRequest

router = APIRouter(prefix="/feed", tags=["feed"])
PostId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class FeedPagePublic(BaseModel):
    """One page of the feed, newest first; pass `next_cursor` back as `cursor`."""

    items: list[FeedPost]
    next_cursor: str | None
    unread: int


@router.get("", summary="My feed")
def my_feed(
    principal: CustomerOnly,
    conn: SyncDbConn,
    paging: Pagination,
    unread_only: Annotated[bool, Query()] = False,
) -> FeedPagePublic:
    """Posts from the customer's products, newest first, with the unread count."""
    assert principal.customer_id is not None
    after = paging.after[0] if paging.after else None
    if after is not None and not isinstance(after, int):
        raise NotFound("invalid cursor")
    page = service.feed_page(
        conn, principal.customer_id, cursor=after, limit=paging.limit, unread_only=unread_only
    )
    cursor = encode_cursor(paging.secret, [page.next_cursor]) if page.next_cursor else None
    return FeedPagePublic(items=page.posts, next_cursor=cursor, unread=page.unread)


@router.post("/{post_id}/read", status_code=status.HTTP_204_NO_CONTENT, summary="Mark read")
@audited(AuditAction.FEED_POST_READ, target_kind="feed_post", target_param="post_id")
def mark_read(post_id: PostId, principal: CustomerOnly, conn: SyncDbConn, trail: Trail) -> None:
    """Mark one of my posts as read."""
    _mark(conn, principal.customer_id, post_id, read=True)
    trail.record_sync(conn)


@router.delete("/{post_id}/read", status_code=status.HTTP_204_NO_CONTENT, summary="Mark unread")
@audited(AuditAction.FEED_POST_UNREAD, target_kind="feed_post", target_param="post_id")
def mark_unread(post_id: PostId, principal: CustomerOnly, conn: SyncDbConn, trail: Trail) -> None:
    """Mark one of my posts as unread again."""
    _mark(conn, principal.customer_id, post_id, read=False)
    trail.record_sync(conn)


@router.post(
    "/{post_id}/reactions", status_code=status.HTTP_204_NO_CONTENT, summary="React to a post"
)
@audited(AuditAction.FEED_POST_REACTED, target_kind="feed_post", target_param="post_id")
def react(
    post_id: PostId,
    body: ReactionRequest,
    principal: CustomerOnly,
    conn: SyncDbConn,
    trail: Trail,
) -> None:
    """Thanks; remind me later (the post comes back unread); mute this kind of post."""
    assert principal.customer_id is not None
    try:
        service.react(conn, principal.customer_id, post_id, body)
    except PostNotFound as exc:
        raise NotFound("no such post") from exc
    trail.record_sync(conn, details={"reaction": str(body.reaction)})


def _mark(conn: SyncDbConn, customer_id: int | None, post_id: int, *, read: bool) -> None:
    assert customer_id is not None
    try:
        service.mark_read(conn, customer_id, post_id, read=read)
    except PostNotFound as exc:
        raise NotFound("no such post") from exc
