"""Sun, clouds, ambient temperature and PV arrays switched straight onto the battery.

The weather is a pure function of (seed, local day): each day's irradiance and ambient
temperature are generated once, per second, from a generator seeded with the day's index, so
a trajectory does not depend on how the caller splits its `advance` calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from edge_agent.simulator.lfp import FloatArray

SECONDS_PER_DAY = 86400
_MINUTES_PER_DAY = 1440
_SOLAR_CONSTANT_W_M2 = 1353.0
_THERMAL_VOLTAGE_V = 0.02569  # kT/q at 25 C
_DIODE_IDEALITY = 1.3
_WEATHER_STREAM = 1  # seed-sequence stream ids keep weather and loads independent


def local_day(unix_s: float, utc_offset_hours: float) -> tuple[int, float]:
    """(local day index since the epoch, seconds into that local day)."""
    local = unix_s + utc_offset_hours * 3600.0
    day = math.floor(local / SECONDS_PER_DAY)
    return day, local - day * SECONDS_PER_DAY


class CloudClass(StrEnum):
    SUNNY = "sunny"
    MIXED = "mixed"
    OVERCAST = "overcast"


@dataclass(frozen=True, slots=True)
class CloudSpec:
    """Per-day cloudiness class probabilities and the passing-cloud process."""

    sunny_probability: float = 0.5
    mixed_probability: float = 0.3  # overcast takes the rest
    sunny_passing_clouds_per_day: float = 3.0
    mixed_clear_mean_min: float = 20.0
    mixed_cloud_mean_min: float = 12.0
    cloud_transmission: tuple[float, float] = (0.2, 0.6)  # range under a passing cloud
    overcast_transmission: tuple[float, float] = (0.12, 0.35)


@dataclass(frozen=True, slots=True)
class AmbientSpec:
    """Daily temperature cycle: coldest before dawn, warmest mid-afternoon."""

    mean_c: float = 20.0
    daily_swing_c: float = 10.0  # peak to trough
    warmest_hour: float = 15.0
    day_to_day_sd_c: float = 2.0
    sunny_bonus_c: float = 2.0  # sunny days run warmer, overcast ones cooler


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """Where the panels are: tilted at the latitude, facing the equator."""

    latitude_deg: float = 45.0
    utc_offset_hours: float = 0.0
    longitude_deg: float | None = None  # None: the time zone's meridian (noon at 12:00 local)
    clouds: CloudSpec = field(default_factory=CloudSpec)
    ambient: AmbientSpec = field(default_factory=AmbientSpec)

    @property
    def effective_longitude_deg(self) -> float:
        if self.longitude_deg is None:
            return self.utc_offset_hours * 15.0
        return self.longitude_deg


@dataclass(frozen=True, slots=True)
class DayWeather:
    """One local day, per second: plane-of-array irradiance (W/m2) and ambient (C)."""

    day: int
    cloud_class: CloudClass
    irradiance_w_m2: FloatArray
    ambient_c: FloatArray


def day_of_year(day: int, utc_offset_hours: float) -> int:
    midday_utc = day * SECONDS_PER_DAY + SECONDS_PER_DAY / 2 - utc_offset_hours * 3600.0
    return datetime.fromtimestamp(midday_utc, UTC).timetuple().tm_yday


def solar_declination_rad(doy: int) -> float:
    return math.radians(23.44) * math.sin(2.0 * math.pi * (284 + doy) / 365.0)


def clear_sky_irradiance(site: SiteSpec, day: int, seconds_of_day: FloatArray) -> FloatArray:
    """Clear-sky irradiance on the panel plane (tilt = |latitude|, facing the equator), W/m2.

    Beam from the Meinel air-mass model plus 10 % diffuse; zero while the sun is down.
    """
    latitude = math.radians(site.latitude_deg)
    declination = solar_declination_rad(day_of_year(day, site.utc_offset_hours))
    solar_hours = (
        seconds_of_day / 3600.0
        + (site.effective_longitude_deg - site.utc_offset_hours * 15.0) / 15.0
    )
    hour_angle = np.radians((solar_hours - 12.0) * 15.0)
    sin_elevation = math.sin(latitude) * math.sin(declination) + math.cos(latitude) * math.cos(
        declination
    ) * np.cos(hour_angle)
    air_mass = 1.0 / np.maximum(sin_elevation, 0.02)
    beam = _SOLAR_CONSTANT_W_M2 * 0.7 ** (air_mass**0.678)
    # Tilt = |latitude| towards the equator: incidence cosine = cos(decl) cos(hour angle).
    incidence = math.cos(declination) * np.cos(hour_angle)
    irradiance = beam * np.maximum(incidence, 0.0) + 0.1 * beam * sin_elevation
    result: FloatArray = np.where(sin_elevation > 0.0, irradiance, 0.0)
    return result


def sun_elevation_deg(site: SiteSpec, unix_s: float) -> float:
    day, second = local_day(unix_s, site.utc_offset_hours)
    latitude = math.radians(site.latitude_deg)
    declination = solar_declination_rad(day_of_year(day, site.utc_offset_hours))
    solar_hours = second / 3600.0 + (site.effective_longitude_deg / 15.0 - site.utc_offset_hours)
    hour_angle = math.radians((solar_hours - 12.0) * 15.0)
    sin_elevation = math.sin(latitude) * math.sin(declination) + math.cos(latitude) * math.cos(
        declination
    ) * math.cos(hour_angle)
    return math.degrees(math.asin(max(-1.0, min(1.0, sin_elevation))))


def _cloud_class(spec: CloudSpec, rng: np.random.Generator) -> CloudClass:
    draw = rng.random()
    if draw < spec.sunny_probability:
        return CloudClass.SUNNY
    if draw < spec.sunny_probability + spec.mixed_probability:
        return CloudClass.MIXED
    return CloudClass.OVERCAST


def _cloud_transmission_per_minute(
    spec: CloudSpec, cloud_class: CloudClass, rng: np.random.Generator
) -> FloatArray:
    """Fraction of clear-sky irradiance getting through, one value per minute of the day."""
    transmission = np.ones(_MINUTES_PER_DAY)
    if cloud_class is CloudClass.OVERCAST:
        low, high = spec.overcast_transmission
        walk = np.cumsum(rng.normal(0.0, 0.02, _MINUTES_PER_DAY))
        overcast: FloatArray = np.clip(rng.uniform(low, high) + walk - walk.mean(), low, high)
        return overcast
    if cloud_class is CloudClass.SUNNY:
        count = int(rng.poisson(spec.sunny_passing_clouds_per_day))
        for _ in range(count):
            start = int(rng.integers(0, _MINUTES_PER_DAY))
            length = int(rng.integers(2, 11))
            transmission[start : start + length] = rng.uniform(*spec.cloud_transmission)
        return transmission
    minute, cloudy = 0, bool(rng.random() < 0.5)
    while minute < _MINUTES_PER_DAY:
        mean = spec.mixed_cloud_mean_min if cloudy else spec.mixed_clear_mean_min
        length = max(1, int(rng.exponential(mean)))
        if cloudy:
            transmission[minute : minute + length] = rng.uniform(*spec.cloud_transmission)
        minute += length
        cloudy = not cloudy
    return transmission


def generate_day_weather(site: SiteSpec, seed: int, day: int) -> DayWeather:
    """The irradiance and ambient temperature of one local day (deterministic in seed, day)."""
    rng = np.random.default_rng([seed, _WEATHER_STREAM, day])
    cloud_class = _cloud_class(site.clouds, rng)
    per_minute = _cloud_transmission_per_minute(site.clouds, cloud_class, rng)
    seconds = np.arange(SECONDS_PER_DAY, dtype=np.float64)
    # Linear between minute centres: a passing cloud's edge takes about a minute.
    minute_centres = np.arange(_MINUTES_PER_DAY, dtype=np.float64) * 60.0 + 30.0
    transmission = np.interp(seconds, minute_centres, per_minute)
    irradiance = clear_sky_irradiance(site, day, seconds) * transmission

    ambient = site.ambient
    offset = rng.normal(0.0, ambient.day_to_day_sd_c)
    if cloud_class is CloudClass.SUNNY:
        offset += ambient.sunny_bonus_c
    elif cloud_class is CloudClass.OVERCAST:
        offset -= ambient.sunny_bonus_c
    phase = 2.0 * np.pi * (seconds / 3600.0 - ambient.warmest_hour) / 24.0
    ambient_c = ambient.mean_c + offset + ambient.daily_swing_c / 2.0 * np.cos(phase)
    return DayWeather(day, cloud_class, irradiance, ambient_c)


class Weather:
    """Day-by-day weather with a small cache (the box walks forward through time)."""

    _CACHE_DAYS = 3

    def __init__(self, site: SiteSpec, seed: int) -> None:
        self.site = site
        self.seed = seed
        self._cache: dict[int, DayWeather] = {}

    def day(self, day: int) -> DayWeather:
        cached = self._cache.get(day)
        if cached is None:
            if len(self._cache) >= self._CACHE_DAYS:
                del self._cache[min(self._cache)]
            cached = generate_day_weather(self.site, self.seed, day)
            self._cache[day] = cached
        return cached


@dataclass(frozen=True, slots=True)
class PvPanelSpec:
    """One panel's datasheet values at STC (1000 W/m2, 25 C cell temperature)."""

    isc_a: float = 9.0
    voc_v: float = 46.0
    isc_temp_coeff_per_k: float = 0.00045  # +0.045 %/K
    voc_temp_coeff_per_k: float = -0.0029  # -0.29 %/K
    noct_c: float = 45.0
    cells_in_series: int = 72


PANEL_72_CELL = PvPanelSpec()
PANEL_36_CELL = PvPanelSpec(isc_a=9.0, voc_v=22.0, cells_in_series=36)


@dataclass(frozen=True, slots=True)
class PvArraySpec:
    """Identical panels in parallel, switched onto the battery by one DSSR20."""

    panel: PvPanelSpec = field(default_factory=PvPanelSpec)
    panels_in_parallel: int = 2

    @property
    def rated_isc_a(self) -> float:
        return self.panel.isc_a * self.panels_in_parallel


def panel_temperature(
    ambient_c: FloatArray, irradiance_w_m2: FloatArray, noct_c: float
) -> FloatArray:
    """NOCT model: Tcell = Tambient + (NOCT - 20) / 800 * G."""
    result: FloatArray = ambient_c + (noct_c - 20.0) / 800.0 * irradiance_w_m2
    return result


# The knee: below this fraction of Voc the array is an ideal current source.
KNEE_FRACTION = 0.8
_KNEE_SHARPNESS = 0.05  # exponential scale of the drop above the knee, as a fraction of Voc


@dataclass(frozen=True, slots=True)
class IvCurve:
    """An array's I-V curve at each step of a stretch of weather: what `pv_array_current`
    needs besides the terminal voltage. Made once per stretch (a day, or a bisection's block)
    and read at many voltages or sliced, instead of worked out again at each."""

    short_circuit_a: FloatArray
    knee_v: FloatArray
    scale_v: FloatArray
    span: FloatArray  # expm1((Voc - knee) / scale): the drop's denominator

    def current_at(self, terminal_voltage_v: FloatArray | float) -> FloatArray:
        """Array output current (amps, >= 0) at a terminal voltage."""
        above_knee = np.maximum(terminal_voltage_v - self.knee_v, 0.0)
        drop = np.expm1(above_knee / self.scale_v) / self.span
        result: FloatArray = np.maximum(self.short_circuit_a * (1.0 - drop), 0.0)
        return result

    def at(self, index: npt.NDArray[np.int64] | slice) -> IvCurve:
        """The curve at some of its steps (an index array or a slice)."""
        return IvCurve(
            self.short_circuit_a[index], self.knee_v[index], self.scale_v[index], self.span[index]
        )


def iv_curve(
    spec: PvArraySpec, irradiance_w_m2: FloatArray, cell_temperature_c: FloatArray
) -> IvCurve:
    """The array's I-V curve per step (see `pv_array_current`)."""
    panel = spec.panel
    short_circuit = (
        spec.rated_isc_a
        * irradiance_w_m2
        / 1000.0
        * (1.0 + panel.isc_temp_coeff_per_k * (cell_temperature_c - 25.0))
    )
    diode_volts = panel.cells_in_series * _DIODE_IDEALITY * _THERMAL_VOLTAGE_V
    open_circuit = panel.voc_v * (1.0 + panel.voc_temp_coeff_per_k * (cell_temperature_c - 25.0))
    open_circuit = open_circuit + diode_volts * np.log(np.maximum(irradiance_w_m2, 1.0) / 1000.0)
    open_circuit = np.maximum(open_circuit, 1e-3)
    knee = KNEE_FRACTION * open_circuit
    scale = _KNEE_SHARPNESS * open_circuit
    span = np.expm1((open_circuit - knee) / scale)
    return IvCurve(
        np.asarray(short_circuit, dtype=np.float64),
        np.asarray(knee, dtype=np.float64),
        np.asarray(scale, dtype=np.float64),
        np.asarray(span, dtype=np.float64),
    )


def pv_array_current(
    spec: PvArraySpec,
    terminal_voltage_v: FloatArray | float,
    irradiance_w_m2: FloatArray,
    cell_temperature_c: FloatArray,
) -> FloatArray:
    """Array output current (amps, >= 0) at a terminal voltage.

    I = Isc * G/1000 * (1 + alpha (T - 25)) up to 0.8 Voc, then a single-diode-like
    exponential fall reaching exactly 0 at Voc (Voc falls with temperature and, logarithmically,
    with irradiance).
    """
    return iv_curve(spec, irradiance_w_m2, cell_temperature_c).current_at(terminal_voltage_v)


def dssr20_current(is_on: bool, source_current_a: FloatArray) -> FloatArray:
    """A DSSR20 is an on/off switch with an ideal diode: never lets current flow back."""
    if not is_on:
        return np.zeros_like(source_current_a)
    result: FloatArray = np.maximum(source_current_a, 0.0)
    return result
