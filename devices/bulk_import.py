"""Bulk device import from CSV: COPY into a staging table, validate in SQL, insert all or none.

The file needs a header with `serial` and `model_id`; `uid`, `firmware` and `nickname` are
optional columns. Every bad row is reported with its line number and nothing is imported
when any row is bad, so a file is either fully in or fully out.
"""

from __future__ import annotations

import csv
import io
import secrets
import time
from collections.abc import Iterator
from typing import Any, TextIO

import structlog
from psycopg import Connection
from psycopg.rows import DictRow

from devices.errors import ImportRejected, InvalidRequest, RowProblem
from devices.models import ImportReport

log = structlog.get_logger(__name__)

COLUMNS = ("serial", "model_id", "uid", "firmware", "nickname")
REQUIRED = ("serial", "model_id")
MAX_ROWS = 1_000_000
MAX_FIELD = 200
PROBLEMS_SHOWN = 100

_STAGING = """
CREATE TEMP TABLE device_import (
    line integer NOT NULL, serial text, model_id text, uid text, firmware text, nickname text
) ON COMMIT DROP
"""

# Each check yields (line, reason); together they cover every CHECK and key of `devices`.
_PROBLEMS = r"""
SELECT line, reason FROM (
    SELECT line, 'serial must be 1-64 letters, digits, dot, dash or underscore' AS reason
      FROM device_import WHERE serial !~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
    UNION ALL
    SELECT line, 'uid must be 1-64 letters, digits, dash or underscore'
      FROM device_import WHERE uid !~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'
    UNION ALL
    SELECT i.line, 'unknown model_id ' || quote_literal(left(i.model_id, 40))
      FROM device_import i LEFT JOIN product_models m ON m.id = i.model_id WHERE m.id IS NULL
    UNION ALL
    SELECT line, 'firmware longer than 64 characters'
      FROM device_import WHERE length(firmware) > 64
    UNION ALL
    SELECT line, 'nickname longer than 80 characters'
      FROM device_import WHERE length(nickname) > 80
    UNION ALL
    SELECT line, 'serial repeats line ' || first FROM (
        SELECT line, min(line) OVER (PARTITION BY serial) AS first FROM device_import
    ) s WHERE line <> first
    UNION ALL
    SELECT line, 'uid repeats line ' || first FROM (
        SELECT line, min(line) OVER (PARTITION BY uid) AS first FROM device_import
    ) s WHERE line <> first
    UNION ALL
    SELECT i.line, 'serial already registered'
      FROM device_import i JOIN devices d ON d.serial = i.serial
    UNION ALL
    SELECT i.line, 'uid already registered'
      FROM device_import i JOIN devices d ON d.uid = i.uid
) problems ORDER BY line, reason
"""

_INSERT = """
INSERT INTO devices (uid, serial, model_id, firmware, nickname)
SELECT uid, serial, model_id, firmware, nickname FROM device_import ORDER BY line
"""


def _rows(
    reader: Any, positions: dict[str, int], problems: list[RowProblem]
) -> Iterator[tuple[object, ...]]:
    width = max(positions.values()) + 1
    for fields in reader:
        line = reader.line_num  # physical line where this record ended
        if not any(f.strip() for f in fields):
            continue
        if len(fields) < width or any("\x00" in f or len(f) > MAX_FIELD for f in fields):
            problems.append(RowProblem(line, "wrong number of fields, NUL or oversized field"))
            continue
        values = {c: (fields[i].strip() or None) for c, i in positions.items()}
        missing = [c for c in REQUIRED if not values.get(c)]
        if missing:
            problems.append(RowProblem(line, f"missing {', '.join(missing)}"))
            continue
        uid = (
            values.get("uid")
            or f"{str(values['model_id']).replace('_', '-')}-{secrets.token_hex(6)}"
        )
        yield (
            line,
            values["serial"],
            values["model_id"],
            uid,
            values.get("firmware"),
            values.get("nickname"),
        )


def _header(reader: Iterator[list[str]]) -> dict[str, int]:
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration as exc:
        raise InvalidRequest("the file is empty") from exc
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing:
        raise InvalidRequest(
            f"header must name {', '.join(REQUIRED)} (optional: uid, firmware, nickname); "
            f"unknown: {unknown[:5]}, missing: {missing}"
        )
    return {name: header.index(name) for name in header}


def import_devices_csv(conn: Connection[DictRow], text: TextIO) -> ImportReport:
    """Import every device in a CSV file, or none; ImportRejected lists the bad rows."""
    started = time.perf_counter()
    reader = csv.reader(text)
    positions = _header(reader)
    problems: list[RowProblem] = []
    with conn.transaction():
        conn.execute(_STAGING)
        try:
            with conn.cursor().copy(
                "COPY device_import (line, serial, model_id, uid, firmware, nickname) FROM STDIN"
            ) as copy:
                for count, row in enumerate(_rows(reader, positions, problems), 1):
                    if count > MAX_ROWS:
                        raise InvalidRequest(f"more than {MAX_ROWS} rows in one import")
                    copy.write_row(row)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InvalidRequest(
                f"not a UTF-8 CSV file near line {reader.line_num}: {exc}"
            ) from exc
        problems += [RowProblem(r["line"], r["reason"]) for r in conn.execute(_PROBLEMS)]
        if problems:
            problems.sort(key=lambda p: (p.line, p.reason))
            raise ImportRejected(problems[:PROBLEMS_SHOWN], len(problems))
        imported = conn.execute(_INSERT).rowcount
    seconds = time.perf_counter() - started
    log.info("devices.imported", count=imported, seconds=round(seconds, 3))
    return ImportReport(imported=imported, seconds=seconds)


def import_devices_csv_bytes(conn: Connection[DictRow], data: bytes) -> ImportReport:
    """Import from raw bytes (an uploaded file)."""
    return import_devices_csv(conn, io.StringIO(_decode(data), newline=""))


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"the file is not UTF-8 (byte {exc.start})") from exc
