"""NTC thermistor divider maths, shared by the ISL94203 driver and its simulated device.

Circuit: a reference voltage (the ISL94203's TEMPO pin) feeds a fixed pull-up resistor; the
NTC runs from the measured node to ground. The NTC follows the beta model
R(T) = R25 * exp(B * (1/T - 1/T25)).

The defaults keep the whole useful range (about -8 C to +100 C) below the 0.9 V that an ISL94203
xT input resolves with TGAIN = 0: a 10 kOhm pull-up would saturate that input below about 40 C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KELVIN_OFFSET = 273.15


@dataclass(frozen=True, slots=True)
class NtcDivider:
    """One thermistor divider: supply -> pull-up -> node -> NTC -> ground."""

    supply_v: float = 2.5  # ISL94203 TEMPO output
    pullup_ohm: float = 100_000.0
    r25_ohm: float = 10_000.0  # SBMS0: 10 kOhm NTC
    beta_k: float = 3900.0  # SBMS0: B 3900
    t25_c: float = 25.0

    def resistance_ohm(self, temperature_c: float) -> float:
        """NTC resistance at a temperature (beta model)."""
        t_k = temperature_c + KELVIN_OFFSET
        t25_k = self.t25_c + KELVIN_OFFSET
        return self.r25_ohm * math.exp(self.beta_k * (1.0 / t_k - 1.0 / t25_k))

    def temperature_from_resistance(self, resistance_ohm: float) -> float:
        """Inverse of `resistance_ohm`; resistance must be positive."""
        if resistance_ohm <= 0.0:
            raise ValueError(f"NTC resistance must be positive, got {resistance_ohm}")
        t25_k = self.t25_c + KELVIN_OFFSET
        inverse_t = 1.0 / t25_k + math.log(resistance_ohm / self.r25_ohm) / self.beta_k
        return 1.0 / inverse_t - KELVIN_OFFSET

    def node_voltage(self, temperature_c: float) -> float:
        """Voltage across the NTC at a temperature."""
        r_ntc = self.resistance_ohm(temperature_c)
        return self.supply_v * r_ntc / (r_ntc + self.pullup_ohm)

    def temperature_from_voltage(self, node_v: float) -> float:
        """Temperature for a node voltage strictly between 0 and the supply."""
        if not 0.0 < node_v < self.supply_v:
            raise ValueError(f"node voltage {node_v} V outside (0, {self.supply_v}) V")
        r_ntc = self.pullup_ohm * node_v / (self.supply_v - node_v)
        return self.temperature_from_resistance(r_ntc)
