"""A lean driver in its own process for the two-process tests (not a test module).

Run as ``python -m tests.driver.peer_process [KEY_HEX [DIAL_ADDRESS]]``. Prints
``{"address": ...}`` once ready, answers every Status request with
``sample_status(42)``, and echoes every gossip attestation back as an attestation from
validator ``index + 1000``. Stops when its stdin closes. Its main thread plays the loop.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from dataclasses import replace

from lean_p2p.driver import DriverConfig, NetworkDriver
from lean_p2p.driver.samples import sample_status
from lean_p2p.net import (
    Event,
    GossipAttestation,
    GossipTopic,
    InboundRequest,
    Publish,
    SendResponseChunk,
    SendResponseEnd,
)

STATUS = sample_status(42)


def main() -> int:
    events: queue.Queue[Event | None] = queue.Queue()
    config = DriverConfig(listen_address="/ip4/127.0.0.1/udp/0/quic-v1")
    if len(sys.argv) > 1:
        config = replace(config, private_key=bytes.fromhex(sys.argv[1]))
    if len(sys.argv) > 2:
        config = replace(config, static_peers=(sys.argv[2],))
    driver = NetworkDriver(config, events.put)
    driver.start()
    if not driver.wait_ready(30):
        return 1
    print(json.dumps({"address": driver.listen_addresses[0]}), flush=True)

    def stop_when_stdin_closes() -> None:
        sys.stdin.read()
        events.put(None)

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    while (event := events.get()) is not None:
        if isinstance(event, GossipAttestation):
            echo = replace(
                event.attestation, validator_index=event.attestation.validator_index + 1000
            )
            driver.send(Publish(GossipTopic.ATTESTATION, echo))
        elif isinstance(event, InboundRequest):
            driver.send(SendResponseChunk(event.request_id, STATUS))
            driver.send(SendResponseEnd(event.request_id))
    driver.stop()
    driver.join(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
