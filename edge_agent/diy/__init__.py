"""The DIY box as the data source: the ISL94203, INA228/INA226 and output drivers built from
the configuration (`hardware.py`), read into a sample (`sampler.py`), and `Agent`, which feeds
the controller, drives the outputs and saves its state (`agent.py`); its recordings replayed
(`replay.py`); `sbms-agent probe` for bring-up (`probe.py`, `host_check.py`). It knows neither
MQTT nor the runtime, which composes it with the loop and the link.
"""
