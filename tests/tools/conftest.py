"""Fixtures of the tools' tests. Runs on the test's main thread.

The native stress tool drives the C ring with the C producer threads, so its tests use
the native tests' fixtures: the ring library (the package's build, or one compiled
now) and a freshly compiled producer driver that stops its threads on teardown.
"""

from tests.native.conftest import compiled_producer_driver, producer_driver, ring_library

__all__ = ["compiled_producer_driver", "producer_driver", "ring_library"]
