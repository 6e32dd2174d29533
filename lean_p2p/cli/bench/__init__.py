"""``lean-p2p bench NAME``: one module per benchmark, its options only. Main thread.

Each module here parses one benchmark's options and calls its
:mod:`lean_p2p.tools.bench` module, which runs the cases side by side, prints the table
and writes the JSON rows.
"""
