"""Clear-sky irradiance on a tilted panel, for the diversion estimate (pure: time passed in).

The ASHRAE clear-sky model (ASHRAE Handbook of Fundamentals, 1972 coefficients, as tabulated
in Duffie & Beckman and most solar-engineering texts): beam normal irradiance
DNI = A exp(-B / sin(altitude)), sky diffuse on a horizontal plane C x DNI, with A, B, C
by month; the diffuse on the panel by the isotropic-sky view factor (1 + cos tilt) / 2.
Sun position from Spencer's (1971) declination and equation of time.

Deliberately not the simulator's model (Meinel air mass, `simulator/pv.py`): the estimate is
benchmarked against the simulator's truth, so it must not share its assumptions.

Only the shape over the day matters to the estimate, which learns the scale from the array's
own measured current; the absolute level is a rough clear-sky value.
"""

from __future__ import annotations

import bisect
import math

SECONDS_PER_DAY = 86400.0
_TROPICAL_YEAR_DAYS = 365.2422
# 1970-01-01 is day 0 of the year; the tropical year keeps the seasons within a day of the
# calendar's over this century, plenty for a monthly coefficient table.

# ASHRAE clear-sky coefficients for the 21st of each month, January first.
_A_W_M2: tuple[float, ...] = (
    1230,
    1215,
    1186,
    1136,
    1104,
    1088,
    1085,
    1107,
    1151,
    1192,
    1221,
    1233,
)
_B: tuple[float, ...] = (
    0.142,
    0.144,
    0.156,
    0.180,
    0.196,
    0.205,
    0.207,
    0.201,
    0.177,
    0.160,
    0.149,
    0.142,
)
_C: tuple[float, ...] = (
    0.058,
    0.060,
    0.071,
    0.097,
    0.121,
    0.134,
    0.136,
    0.122,
    0.092,
    0.073,
    0.063,
    0.057,
)
_DAY_OF_21ST = (20, 51, 79, 110, 140, 171, 201, 232, 263, 293, 324, 354)


def day_of_year(unix_s: float) -> float:
    """Days since the start of the (tropical) year, 0 to 365.24."""
    return (unix_s / SECONDS_PER_DAY) % _TROPICAL_YEAR_DAYS


def _coefficients(doy: float) -> tuple[float, float, float]:
    """A, B, C interpolated linearly between the tabulated 21sts, cyclically over the year."""
    days = (_DAY_OF_21ST[-1] - 365, *_DAY_OF_21ST, _DAY_OF_21ST[0] + 365)
    index = bisect.bisect_right(days, doy) - 1
    weight = (doy - days[index]) / (days[index + 1] - days[index])
    first, second = (index - 1) % 12, index % 12  # days[i] is month i - 1, cyclically

    def between(table: tuple[float, ...]) -> float:
        return table[first] + weight * (table[second] - table[first])

    return between(_A_W_M2), between(_B), between(_C)


def _spencer(doy: float) -> tuple[float, float]:
    """Declination (radians) and equation of time (minutes), Spencer 1971."""
    g = 2.0 * math.pi * doy / 365.0
    declination = (
        0.006918
        - 0.399912 * math.cos(g)
        + 0.070257 * math.sin(g)
        - 0.006758 * math.cos(2 * g)
        + 0.000907 * math.sin(2 * g)
        - 0.002697 * math.cos(3 * g)
        + 0.00148 * math.sin(3 * g)
    )
    equation_of_time = 229.18 * (
        0.000075
        + 0.001868 * math.cos(g)
        - 0.032077 * math.sin(g)
        - 0.014615 * math.cos(2 * g)
        - 0.040849 * math.sin(2 * g)
    )
    return declination, equation_of_time


def sun_vector(unix_s: float, latitude_deg: float, longitude_deg: float) -> tuple[float, ...]:
    """Unit vector to the sun, (east, north, up)."""
    doy = day_of_year(unix_s)
    declination, equation_of_time = _spencer(doy)
    utc_hours = (unix_s % SECONDS_PER_DAY) / 3600.0
    solar_hours = utc_hours + longitude_deg / 15.0 + equation_of_time / 60.0
    hour_angle = math.radians((solar_hours - 12.0) * 15.0)
    latitude = math.radians(latitude_deg)
    east = -math.cos(declination) * math.sin(hour_angle)
    north = math.cos(latitude) * math.sin(declination) - math.sin(latitude) * math.cos(
        declination
    ) * math.cos(hour_angle)
    up = math.sin(latitude) * math.sin(declination) + math.cos(latitude) * math.cos(
        declination
    ) * math.cos(hour_angle)
    return east, north, up


def plane_irradiance(
    unix_s: float,
    latitude_deg: float,
    longitude_deg: float,
    tilt_deg: float,
    azimuth_deg: float,
) -> float:
    """Clear-sky irradiance on a panel tilted `tilt_deg` facing `azimuth_deg` (0 north,
    90 east, 180 south), W/m2; 0 while the sun is down."""
    east, north, up = sun_vector(unix_s, latitude_deg, longitude_deg)
    if up <= 0.0:
        return 0.0
    a, b, c = _coefficients(day_of_year(unix_s))
    beam_normal = a * math.exp(-b / max(up, 0.05))
    tilt, azimuth = math.radians(tilt_deg), math.radians(azimuth_deg)
    incidence = (
        east * math.sin(tilt) * math.sin(azimuth)
        + north * math.sin(tilt) * math.cos(azimuth)
        + up * math.cos(tilt)
    )
    diffuse = c * beam_normal * (1.0 + math.cos(tilt)) / 2.0
    return beam_normal * max(incidence, 0.0) + diffuse
