"""A stock Electrodacus SBMS0/SBMS120 as the agent's data source (read-only: the SBMS controls).

frame.py decodes the `sbms` data string, rawdata.py the WiFi board's /rawData page; receiver.py
counts and keeps the latest good frame; serial_source.py and http_source.py feed it; report.py
maps it onto the agent's normal ControlReport; agent.py steps it in place of the I2C sampler
and controller. The runtime composes it with the loop and the MQTT link
(`runtime/sbms0_runner.py`): this package imports neither. `replay.py` replays a recording
through the real receiver and agent.
"""
