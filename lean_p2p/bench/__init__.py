"""Benchmarks run by ``lean-p2p bench NAME``: each prints a table and writes JSON.

Benchmarks compare variants side by side in one run; they assert nothing about speed.
"""
