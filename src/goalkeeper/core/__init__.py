"""The pure domain engine: no I/O, no asyncio, no third-party imports.

Everything here is deterministic given its inputs (time comes in as a value) and snapshots to and
restores from plain JSON-able dicts.
"""
