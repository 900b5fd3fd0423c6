"""Storage formats of the columnar path: binary array parameters and packed device rows."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
from psycopg import Connection
from psycopg.rows import DictRow

from rules import pgarray
from rules.columnar import PackedRows, Segment, pack, unpack
from rules.engine import compile_rule
from rules.models import parse_rule_spec
from rules.vector import DUE_AT, HOLDING, RULE_ID, VERSION, WIDTH, ColumnarRule


def test_binary_arrays_arrive_as_the_values_they_were_built_from(db: Connection[DictRow]) -> None:
    pgarray.use_on(db)
    at = datetime(2026, 3, 2, 9, 0, 0, 123457, tzinfo=UTC)
    row = db.execute(
        "SELECT %b AS ints, %b AS floats, %b AS blobs, %b AS texts, %b AS docs, %b AS times,"
        " %b AS no_ints, (%b)::float8[] = ARRAY['NaN']::float8[] AS nan_kept",
        (
            pgarray.int8_array([1, -2, 2**62]),
            pgarray.float8_array([0.1, -2.5e300]),
            pgarray.bytea_array([b"\x00\x01", None, b""]),
            pgarray.text_array(["ä", None, ""]),
            pgarray.jsonb_array(['{"a": [1, 2.5]}', None, "{}"]),
            pgarray.timestamptz_array([at]),
            pgarray.int8_array([]),
            pgarray.float8_array([math.nan]),
        ),
    ).fetchone()
    assert row == {
        "ints": [1, -2, 2**62],
        "floats": [0.1, -2.5e300],
        "blobs": [b"\x00\x01", None, b""],
        "texts": ["ä", None, ""],
        "docs": [{"a": [1, 2.5]}, None, {}],
        "times": [at],
        "no_ints": [],
        "nan_kept": True,
    }


def _columnar(rule_id: int, when: dict) -> ColumnarRule:
    spec = {"key": f"p.r{rule_id}", "name": "n", "scope": {"model": "x"}, "when": when}
    rule = compile_rule(rule_id, 3, parse_rule_spec({**spec, "actions": {"alert": {}}}))
    assert rule.columnar is not None
    return rule.columnar


def test_a_packed_row_describes_itself_and_a_damaged_tail_is_dropped() -> None:
    warm = _columnar(7, {"threshold": {"metric": "t", "above": 8}})
    door = _columnar(
        9, {"duration": {"for": "2m", "condition": {"state": {"metric": "d", "equals": True}}}}
    )
    rows = [warm.fresh_rows(1)[0], door.fresh_rows(1)[0]]
    rows[1][[HOLDING, DUE_AT]] = 1.0, 1.7e9 + 120
    floats = np.frombuffer(pack(rows), dtype="<f8")
    assert len(floats) == rows[0][WIDTH] + rows[1][WIDTH]
    segments = unpack(floats)
    assert [(s.rule_id, s.version) for s in segments] == [(7, 3), (9, 3)]
    assert segments[1].row.tobytes() == rows[1].tobytes()
    assert [s.rule_id for s in unpack(floats[:-1])] == [7]  # the second segment is cut short
    assert unpack(np.zeros(0)) == []


def test_packed_rows_from_an_aggregated_load_keep_rows_and_raw_values_apart() -> None:
    first = np.array([5.0, 1, 8, 0, np.nan, np.nan, 0, 0.0])  # header of rule 5, width 8
    second = np.array([6.0, 2, 8, 1, 1.7e9, np.nan, 1, 0.0])
    blob_a, blob_b = pack([first]), pack([first, second])
    packed = PackedRows.from_parts(
        np.array([11, 12]),
        blob_a + blob_b,
        np.array([len(blob_a), len(blob_b)]),
        {"12": {"6": {"mode": "eco"}}},
    )
    assert packed.device_ids.tolist() == [11, 12] and packed.lengths.tolist() == [8, 16]
    [only] = packed.segments(0)
    assert (only.rule_id, only.version, only.raw) == (5, 1, {})
    a, b = packed.segments(1)
    assert (b.rule_id, b.version, b.raw) == (6, 2, {"mode": "eco"})
    assert a.row[RULE_ID] == 5 and b.row[VERSION] == 2 and b.row[HOLDING] == 1.0
    assert isinstance(b, Segment)
