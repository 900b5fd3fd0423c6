"""The world around the devices: Tokyo weather, the calendar and places people drive to."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")

# (name, lat, lon): residential areas where owners live, and places they drive to.
HOME_AREAS: tuple[tuple[str, float, float], ...] = (
    ("setagaya", 35.6466, 139.6532),
    ("nerima", 35.7356, 139.6517),
    ("koto", 35.6728, 139.8171),
    ("meguro", 35.6339, 139.6982),
    ("suginami", 35.6995, 139.6364),
    ("nakahara", 35.5764, 139.6596),
)
WORK_AREAS: tuple[tuple[str, float, float], ...] = (
    ("otemachi", 35.6867, 139.7636),
    ("shinjuku", 35.6909, 139.7003),
    ("shinagawa", 35.6285, 139.7388),
    ("roppongi", 35.6628, 139.7314),
)
OUTING_AREAS: tuple[tuple[str, float, float], ...] = (
    ("futakotamagawa", 35.6117, 139.6267),
    ("toyosu", 35.6550, 139.7960),
    ("ikebukuro", 35.7295, 139.7109),
    ("odaiba", 35.6268, 139.7753),
)


def outdoor_temp_c(moment: datetime) -> float:
    """Typical Tokyo air temperature: a seasonal curve plus a daily one peaking at 14:00."""
    local = moment.astimezone(TOKYO)
    day_of_year = local.timetuple().tm_yday
    seasonal = 16.5 - 10.5 * math.cos(2 * math.pi * (day_of_year - 20) / 365.25)
    hour = local.hour + local.minute / 60
    daily = 4.0 * math.cos(2 * math.pi * (hour - 14) / 24)
    return seasonal + daily


def _nth_monday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    offset = (7 - first.weekday()) % 7
    return first + timedelta(days=offset + 7 * (n - 1))


@cache
def japanese_holidays(year: int) -> frozenset[date]:
    """Public holidays in Japan (equinoxes approximated) plus the year-end break."""
    fixed = [(1, 1), (2, 11), (2, 23), (3, 20), (4, 29), (5, 3), (5, 4), (5, 5), (8, 11)]
    fixed += [(9, 23), (11, 3), (11, 23), (12, 29), (12, 30), (12, 31), (1, 2), (1, 3)]
    days = {date(year, m, d) for m, d in fixed}
    days |= {_nth_monday(year, 1, 2), _nth_monday(year, 7, 3)}
    days |= {_nth_monday(year, 9, 3), _nth_monday(year, 10, 2)}
    # A holiday on a Sunday gives the next day that is not a holiday off (furikae kyūjitsu).
    for sunday in sorted(d for d in days if d.weekday() == 6):
        substitute = sunday + timedelta(days=1)
        while substitute in days:
            substitute += timedelta(days=1)
        days.add(substitute)
    return frozenset(days)


def is_day_off(day: date) -> bool:
    """Weekend or public holiday."""
    return day.weekday() >= 5 or day in japanese_holidays(day.year)


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))
