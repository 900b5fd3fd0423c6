"""Read-only fleet, device and customer queries for dashboards (no writes, no side effects).

Every function takes an open connection (dict rows) and returns plain dataclasses. Sort and
filter inputs are allow-listed here, so a caller can pass user input straight through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from psycopg import Connection, sql
from psycopg.rows import DictRow

Conn = Connection[DictRow]
Status = Literal["online", "offline"]

# A device is online when its last message is recent and it did not say goodbye (LWT).
_ONLINE = sql.SQL(
    "(t.connection IS DISTINCT FROM 'offline' AND t.last_seen > now() - make_interval(secs => {}))"
)
# Vehicles report their position; fixed appliances have a registered location.
_LAT = sql.SQL("COALESCE((t.reported->'lat'->>'v')::float8, d.latitude)")
_LON = sql.SQL("COALESCE((t.reported->'lon'->>'v')::float8, d.longitude)")

SORTABLE_COLUMNS: dict[str, str] = {
    "uid": "d.uid",
    "serial": "d.serial",
    "model_id": "d.model_id",
    "firmware": "d.firmware",
    "nickname": "d.nickname",
    "last_seen": "t.last_seen",
    "created_at": "d.created_at",
}
MAX_PAGE_SIZE = 500


def _online(window_s: float) -> sql.Composable:
    return _ONLINE.format(sql.Literal(float(window_s)))


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """How many devices of one product model are online and offline."""

    model_id: str
    online: int
    offline: int

    @property
    def total(self) -> int:
        """All active devices of this model."""
        return self.online + self.offline


def fleet_status_by_model(conn: Conn, online_window_s: float = 300) -> list[ModelStatus]:
    """Online/offline counts per product model, decommissioned devices excluded."""
    query = sql.SQL(
        """SELECT d.model_id, count(*) FILTER (WHERE {online}) AS online,
                  count(*) FILTER (WHERE NOT {online}) AS offline
           FROM devices d LEFT JOIN device_twins t ON t.device_id = d.id
           WHERE d.decommissioned_at IS NULL
           GROUP BY d.model_id ORDER BY d.model_id"""
    ).format(online=sql.SQL("COALESCE({}, false)").format(_online(online_window_s)))
    rows = conn.execute(query).fetchall()
    return [ModelStatus(r["model_id"], r["online"], r["offline"]) for r in rows]


@dataclass(frozen=True, slots=True)
class Bounds:
    """A latitude/longitude rectangle."""

    lat_min: float = -90
    lat_max: float = 90
    lon_min: float = -180
    lon_max: float = 180


@dataclass(frozen=True, slots=True)
class MapPoint:
    """One device, or a cluster of `count` devices, on the map."""

    lat: float
    lon: float
    count: int
    online: int
    model_id: str | None = None
    uid: str | None = None


def count_positions(conn: Conn, bounds: Bounds) -> int:
    """How many located devices fall inside `bounds`."""
    query = sql.SQL(
        """SELECT count(*) AS n FROM devices d LEFT JOIN device_twins t ON t.device_id = d.id
           WHERE d.decommissioned_at IS NULL AND {lat} BETWEEN %(a)s AND %(b)s
             AND {lon} BETWEEN %(c)s AND %(d)s"""
    ).format(lat=_LAT, lon=_LON)
    row = conn.execute(query, _bounds_params(bounds)).fetchone()
    return int(row["n"]) if row else 0


def device_positions(
    conn: Conn, bounds: Bounds, *, limit: int, online_window_s: float = 300
) -> list[MapPoint]:
    """Individual device positions inside `bounds`, at most `limit` of them."""
    query = sql.SQL(
        """SELECT d.uid, d.model_id, {lat} AS lat, {lon} AS lon,
                  COALESCE({online}, false) AS online
           FROM devices d LEFT JOIN device_twins t ON t.device_id = d.id
           WHERE d.decommissioned_at IS NULL AND {lat} BETWEEN %(a)s AND %(b)s
             AND {lon} BETWEEN %(c)s AND %(d)s
           ORDER BY d.id LIMIT %(limit)s"""
    ).format(lat=_LAT, lon=_LON, online=_online(online_window_s))
    params = {**_bounds_params(bounds), "limit": limit}
    return [
        MapPoint(r["lat"], r["lon"], 1, int(r["online"]), r["model_id"], r["uid"])
        for r in conn.execute(query, params)
    ]


def clustered_positions(
    conn: Conn, bounds: Bounds, *, cell_deg: float, online_window_s: float = 300
) -> list[MapPoint]:
    """Devices inside `bounds` grouped into square cells of `cell_deg` degrees."""
    query = sql.SQL(
        """SELECT avg(lat) AS lat, avg(lon) AS lon, count(*) AS n,
                  count(*) FILTER (WHERE online) AS online
           FROM (SELECT {lat} AS lat, {lon} AS lon, COALESCE({online}, false) AS online
                 FROM devices d LEFT JOIN device_twins t ON t.device_id = d.id
                 WHERE d.decommissioned_at IS NULL) p
           WHERE lat BETWEEN %(a)s AND %(b)s AND lon BETWEEN %(c)s AND %(d)s
           GROUP BY floor(lat / %(cell)s), floor(lon / %(cell)s)"""
    ).format(lat=_LAT, lon=_LON, online=_online(online_window_s))
    params = {**_bounds_params(bounds), "cell": cell_deg}
    return [MapPoint(r["lat"], r["lon"], r["n"], r["online"]) for r in conn.execute(query, params)]


def _bounds_params(bounds: Bounds) -> dict[str, float]:
    return {"a": bounds.lat_min, "b": bounds.lat_max, "c": bounds.lon_min, "d": bounds.lon_max}


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """A page of the devices table: filters, one allow-listed sort and a bounded page."""

    search: str | None = None
    model_id: str | None = None
    status: Status | None = None
    sort_by: str = "uid"
    descending: bool = False
    page: int = 0
    page_size: int = 25
    online_window_s: float = 300

    def __post_init__(self) -> None:
        if self.sort_by not in SORTABLE_COLUMNS:
            raise ValueError(f"cannot sort devices by {self.sort_by!r}")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if self.page < 0:
            raise ValueError("page must not be negative")


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One line of the devices table."""

    id: int
    uid: str
    serial: str
    model_id: str
    firmware: str | None
    nickname: str | None
    online: bool
    last_seen: datetime | None


@dataclass(frozen=True, slots=True)
class DevicePage:
    """A page of devices and how many match in total."""

    rows: list[DeviceRow]
    total: int
    page: int = 0


def device_page(conn: Conn, query: DeviceQuery) -> DevicePage:
    """One page of active devices matching the filters, sorted server-side."""
    where, params = _device_filters(query)
    order = sql.SQL("{} {} NULLS LAST, d.id").format(
        sql.SQL(SORTABLE_COLUMNS[query.sort_by]),
        sql.SQL("DESC" if query.descending else "ASC"),
    )
    online = sql.SQL("COALESCE({}, false)").format(_online(query.online_window_s))
    base = sql.SQL("FROM devices d LEFT JOIN device_twins t ON t.device_id = d.id WHERE {}").format(
        where
    )
    total_row = conn.execute(sql.SQL("SELECT count(*) AS n {}").format(base), params).fetchone()
    total = int(total_row["n"]) if total_row else 0
    page = min(query.page, max(0, (total - 1) // query.page_size))  # past the end: last page
    rows = conn.execute(
        sql.SQL(
            """SELECT d.id, d.uid, d.serial, d.model_id, d.firmware, d.nickname,
                      {online} AS online, t.last_seen {base}
               ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s"""
        ).format(online=online, base=base, order=order),
        {**params, "limit": query.page_size, "offset": page * query.page_size},
    ).fetchall()
    return DevicePage([DeviceRow(**r) for r in rows], total, page)


def _device_filters(query: DeviceQuery) -> tuple[sql.Composable, dict[str, Any]]:
    clauses: list[sql.Composable] = [sql.SQL("d.decommissioned_at IS NULL")]
    params: dict[str, Any] = {}
    if query.search:
        clauses.append(sql.SQL("(d.uid ILIKE %(search)s OR d.serial ILIKE %(search)s)"))
        params["search"] = "%" + _escape_like(query.search.strip()) + "%"
    if query.model_id:
        clauses.append(sql.SQL("d.model_id = %(model_id)s"))
        params["model_id"] = query.model_id
    if query.status:
        online = sql.SQL("COALESCE({}, false)").format(_online(query.online_window_s))
        clauses.append(online if query.status == "online" else sql.SQL("NOT {}").format(online))
    return sql.SQL(" AND ").join(clauses), params


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class DeviceDetail:
    """A device with its twin: what it reported, what is desired, and when it was last seen."""

    id: int
    uid: str
    serial: str
    model_id: str
    firmware: str | None
    nickname: str | None
    latitude: float | None
    longitude: float | None
    online: bool
    last_seen: datetime | None
    reported: dict[str, Any] = field(default_factory=dict)
    desired: dict[str, Any] = field(default_factory=dict)
    desired_version: int = 0
    owner_customer_id: int | None = None


def device_detail(
    conn: Conn, uid: str, *, customer_id: int | None = None, online_window_s: float = 300
) -> DeviceDetail | None:
    """A device by uid; with `customer_id`, only when that customer currently has it."""
    ownership = sql.SQL("")
    params: dict[str, Any] = {"uid": uid}
    if customer_id is not None:
        ownership = sql.SQL(
            """AND EXISTS (SELECT 1 FROM device_ownerships o WHERE o.device_id = d.id
                 AND o.customer_id = %(customer_id)s AND o.ended_at IS NULL)"""
        )
        params["customer_id"] = customer_id
    query = sql.SQL(
        """SELECT d.id, d.uid, d.serial, d.model_id, d.firmware, d.nickname, d.latitude,
                  d.longitude, COALESCE({online}, false) AS online, t.last_seen,
                  COALESCE(t.reported, '{{}}') AS reported, COALESCE(t.desired, '{{}}') AS desired,
                  COALESCE(t.desired_version, 0) AS desired_version,
                  (SELECT o.customer_id FROM device_ownerships o WHERE o.device_id = d.id
                     AND o.role = 'owner' AND o.ended_at IS NULL) AS owner_customer_id
           FROM devices d LEFT JOIN device_twins t ON t.device_id = d.id
           WHERE d.uid = %(uid)s AND d.decommissioned_at IS NULL {ownership}"""
    ).format(online=_online(online_window_s), ownership=ownership)
    row = conn.execute(query, params).fetchone()
    return DeviceDetail(**row) if row else None


def customer_devices(
    conn: Conn, customer_id: int, *, online_window_s: float = 300
) -> list[DeviceDetail]:
    """The devices a customer currently owns or shares, with their latest state."""
    query = sql.SQL(
        """SELECT d.id, d.uid, d.serial, d.model_id, d.firmware, d.nickname, d.latitude,
                  d.longitude, COALESCE({online}, false) AS online, t.last_seen,
                  COALESCE(t.reported, '{{}}') AS reported, COALESCE(t.desired, '{{}}') AS desired,
                  COALESCE(t.desired_version, 0) AS desired_version,
                  %(customer_id)s::bigint AS owner_customer_id
           FROM device_ownerships o JOIN devices d ON d.id = o.device_id
           LEFT JOIN device_twins t ON t.device_id = d.id
           WHERE o.customer_id = %(customer_id)s AND o.ended_at IS NULL
             AND d.decommissioned_at IS NULL
           ORDER BY d.model_id, d.uid"""
    ).format(online=_online(online_window_s))
    return [DeviceDetail(**r) for r in conn.execute(query, {"customer_id": customer_id})]


@dataclass(frozen=True, slots=True)
class CustomerRow:
    """A customer as operators see them: ids, language, and how their products are doing."""

    id: int
    public_id: str
    language: str
    time_zone: str
    name_enc: bytes | None
    devices: int
    online: int
    created_at: datetime


def customers_page(
    conn: Conn, *, page: int = 0, page_size: int = 25, online_window_s: float = 300
) -> tuple[list[CustomerRow], int]:
    """A page of active customers with device counts, and the total number of customers."""
    if not 1 <= page_size <= MAX_PAGE_SIZE or page < 0:
        raise ValueError("page out of range")
    total_row = conn.execute(
        "SELECT count(*) AS n FROM customers WHERE erased_at IS NULL"
    ).fetchone()
    query = sql.SQL(
        """SELECT c.id, c.public_id::text AS public_id, c.language, c.time_zone, c.name_enc,
                  c.created_at, count(d.id) AS devices,
                  count(d.id) FILTER (WHERE COALESCE({online}, false)) AS online
           FROM customers c
           LEFT JOIN device_ownerships o ON o.customer_id = c.id AND o.ended_at IS NULL
           LEFT JOIN devices d ON d.id = o.device_id AND d.decommissioned_at IS NULL
           LEFT JOIN device_twins t ON t.device_id = d.id
           WHERE c.erased_at IS NULL
           GROUP BY c.id ORDER BY c.id LIMIT %(limit)s OFFSET %(offset)s"""
    ).format(online=_online(online_window_s))
    rows = conn.execute(query, {"limit": page_size, "offset": page * page_size}).fetchall()
    customers = [
        CustomerRow(**{**r, "name_enc": bytes(r["name_enc"]) if r["name_enc"] else None})
        for r in rows
    ]
    return customers, int(total_row["n"]) if total_row else 0


def customer_by_public_id(conn: Conn, public_id: str) -> CustomerRow | None:
    """One active customer by public id (a uuid string), or None."""
    rows, _ = _customer_rows(conn, "c.public_id::text = %(pid)s", {"pid": public_id})
    return rows[0] if rows else None


def customer_by_id(conn: Conn, customer_id: int) -> CustomerRow | None:
    """One active customer by internal id, or None."""
    rows, _ = _customer_rows(conn, "c.id = %(cid)s", {"cid": customer_id})
    return rows[0] if rows else None


def _customer_rows(conn: Conn, where: str, params: dict[str, Any]) -> tuple[list[CustomerRow], int]:
    query = sql.SQL(
        """SELECT c.id, c.public_id::text AS public_id, c.language, c.time_zone, c.name_enc,
                  c.created_at, count(d.id) AS devices,
                  count(d.id) FILTER (WHERE COALESCE({online}, false)) AS online
           FROM customers c
           LEFT JOIN device_ownerships o ON o.customer_id = c.id AND o.ended_at IS NULL
           LEFT JOIN devices d ON d.id = o.device_id AND d.decommissioned_at IS NULL
           LEFT JOIN device_twins t ON t.device_id = d.id
           WHERE c.erased_at IS NULL AND {where}
           GROUP BY c.id"""
    ).format(online=_online(300), where=sql.SQL(where))
    rows = conn.execute(query, params).fetchall()
    customers = [
        CustomerRow(**{**r, "name_enc": bytes(r["name_enc"]) if r["name_enc"] else None})
        for r in rows
    ]
    return customers, len(customers)


@dataclass(frozen=True, slots=True)
class CommandRow:
    """A command sent to a device and how far it got."""

    command_id: str
    name: str
    args: dict[str, Any]
    status: str
    requested_by: str | None
    created_at: datetime
    finished_at: datetime | None
    detail: str | None


def recent_commands(conn: Conn, device_id: int, *, limit: int = 20) -> list[CommandRow]:
    """The latest commands of one device, newest first."""
    rows = conn.execute(
        """SELECT command_id, name, args, status, requested_by, created_at, finished_at, detail
           FROM device_commands WHERE device_id = %s ORDER BY created_at DESC LIMIT %s""",
        (device_id, min(limit, MAX_PAGE_SIZE)),
    ).fetchall()
    return [CommandRow(**r) for r in rows]


def position_extent(conn: Conn) -> Bounds | None:
    """The smallest rectangle holding every located device, or None when none is located."""
    row = conn.execute(
        sql.SQL(
            """SELECT min({lat}) AS a, max({lat}) AS b, min({lon}) AS c, max({lon}) AS d
               FROM devices d LEFT JOIN device_twins t ON t.device_id = d.id
               WHERE d.decommissioned_at IS NULL"""
        ).format(lat=_LAT, lon=_LON)
    ).fetchone()
    if not row or row["a"] is None:
        return None
    return Bounds(row["a"], row["b"], row["c"], row["d"])
