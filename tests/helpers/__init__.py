"""Helpers shared by the test packages (never tests themselves).

- `mqtt_broker`: a real mosquitto on a free port.
- `mqtt`: MQTT clients that record what the agent publishes and wait for it.
- `hass`: waiting on Home Assistant and its MQTT integration (imports Home Assistant).
- `sbms0`: stock SBMS frames and pages built from known values, a simulated SBMS.
"""
