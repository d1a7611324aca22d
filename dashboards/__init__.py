"""The battery dashboard and the command that fits it to a box."""
