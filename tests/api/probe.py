"""A small router mounted only in tests, to exercise the shared dependencies directly."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import AnyUser, OwnedDevice, StaffOnly
from api.pagination import Page, Pagination, Sort, TimeRangeDep, sort_param

router = APIRouter(prefix="/probe", tags=["probe"])


@router.get("/devices/{device_uid}")
async def read_device(device: OwnedDevice) -> dict[str, Any]:
    """The device as the dependency resolved it."""
    return {"uid": device.uid, "relation": device.relation}


@router.post("/devices/{device_uid}/poke")
async def poke_device(device: OwnedDevice) -> dict[str, str]:
    """A state-changing call on a device."""
    return {"poked": device.uid}


@router.get("/staff")
async def staff_only(principal: StaffOnly) -> dict[str, str]:
    """Any staff member or a read-scoped key."""
    return {"role": principal.role}


@router.post("/staff")
async def staff_write(principal: StaffOnly) -> dict[str, str]:
    """Staff or a write-scoped key."""
    return {"role": principal.role}


@router.get("/numbers")
async def numbers(
    principal: AnyUser,
    page: Pagination,
    window: TimeRangeDep,
    sort: Sort = sort_param(("n",), "n"),
) -> Page[int]:
    """Numbers 1..120 paginated, to check the shared list helpers."""
    values = list(range(1, 121))
    if sort.descending:
        values.reverse()
    if page.after:
        last = int(page.after[0])
        values = [v for v in values if (v < last if sort.descending else v > last)]
    rows = values[: page.limit + 1]
    return page.page(rows, key=lambda v: (v,))


@router.get("/boom")
async def boom(principal: AnyUser) -> None:
    """Fails with personal data in the exception text."""
    raise RuntimeError("customer taro@example.com at +81 90 1111 2222 broke it")
