"""SBMS edge agent: measurement, SoC, EXTIO control and protection for a solar battery box."""

__version__ = "0.5.0"
