"""Fixture-format plug-ins, one module per format (protocol: lean_p2p.tools.spectest.runner).

Runs on the caller's thread.
"""
