"""leanSpec fixture vectors: where they live, the runner, and one plug-in per format.

Runs on the caller's thread (tests, the ``lean-p2p spectest`` command).
"""
