"""Benchmarks run by ``lean-p2p bench NAME``: each prints a table and writes JSON.

They run on the command's main thread and start whatever threads and processes the
scenario needs. Benchmarks compare variants side by side in one run; they assert nothing
about speed.
"""
