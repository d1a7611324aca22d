"""The one-command demo: a broker, the agent on the simulated box and a real Home Assistant.

Run it with `./scripts/demo` (or `.venv-demo/bin/python -m demo`); see demo/__main__.py.
"""
