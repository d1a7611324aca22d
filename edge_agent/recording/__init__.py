"""What the agent read, recorded to a file (`record.py`) and read back strictly (`read.py`),
so a user's problem replays on a laptop; each source replays its own (`diy/replay.py`,
`sbms0/replay.py`).
"""
