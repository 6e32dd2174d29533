"""Fixture-format plug-ins, one module per format (protocol: lean_p2p.spectest.runner).

Runs on the caller's thread.
"""
