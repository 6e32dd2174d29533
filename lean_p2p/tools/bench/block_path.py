"""``lean-p2p bench block-path``: where one block's time goes on its way through the
lean driver, part by part, in one process.

Runs on the command's main thread. Each part is the driver's own code (or aioquic's,
which the driver runs) timed on its own, per block, for each block size and each QUIC
datagram size (1,200 bytes, where every connection starts, and the size path-MTU
discovery reaches on loopback):

- sender: ``encode`` (SSZ and snappy, :func:`lean_p2p.driver.codec.encode_gossip`),
  ``frame`` (the gossipsub RPC frame, protobuf), ``quic_send`` (aioquic packetizing
  and encrypting the frame's datagrams, and processing the acknowledgements that come
  back);
- receiver: ``quic_receive`` (aioquic decrypting and parsing every datagram, handing
  the stream data over, building the acknowledgements), ``parse`` (the RPC frame,
  protobuf), ``message_id`` (snappy decompression and the message id's SHA-256,
  :func:`lean_p2p.driver.codec.gossip_message_id`), ``decode`` (SSZ).

The QUIC parts run a pair of aioquic connections in memory, the datagrams handed from
one to the other directly: no sockets, no py-libp2p stream plumbing, no trio. What a
real hop adds to these parts (system calls, the plumbing, scheduling, the round trips,
the hand-off into the loop) is the difference between their sum and the one-hop latency
``lean-p2p bench gossip`` measures; ``docs/bench-gossip.md`` puts the two side by side.
"""

from __future__ import annotations

import argparse
import datetime
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lean_p2p.tools import report
from lean_p2p.tools.running import INTERRUPTS, Progress

__all__ = [
    "COLUMNS",
    "QuicPair",
    "QuicUnavailable",
    "measure",
    "run_benchmark",
    "self_signed_certificate",
]

#: the parts timed, in CPU milliseconds per block
_PARTS = (
    "encode_ms",
    "frame_ms",
    "quic_send_ms",
    "quic_receive_ms",
    "parse_ms",
    "message_id_ms",
    "decode_ms",
)
COLUMNS = ("quic", "block_bytes", "datagram_bytes", "datagrams", *_PARTS, "cpu_total_ms")
BLOCK_SIZES = (100_000, 500_000, 2_000_000)
#: where every connection starts, and what path-MTU discovery reaches on loopback
DATAGRAM_SIZES = (1_200, 16_384)
_CLIENT = ("10.0.0.1", 4001)
_SERVER = ("10.0.0.2", 4002)
#: the delayed acknowledgement aioquic waits for at most (its max_ack_delay)
_ACK_DELAY_S = 0.025


class QuicPair:
    """Two QUIC connections past their handshake, wired in memory. ``send`` moves one
    stream's data from the client to the server and times each side's work.

    ``library`` is ``aioquic`` (what the driver runs) or ``qh3`` (a fork of aioquic
    with its packet work in Rust and the same sans-I/O API, where it is installed: the
    comparison in docs/bench-gossip.md)."""

    def __init__(self, datagram_size: int, directory: Path, library: str = "aioquic") -> None:
        quic = _quic_library(library)
        certificate, key = self_signed_certificate(directory)
        client_config = quic.configuration.QuicConfiguration(
            is_client=True, alpn_protocols=["bench"]
        )
        client_config.verify_mode = ssl.CERT_NONE
        server_config = quic.configuration.QuicConfiguration(
            is_client=False, alpn_protocols=["bench"]
        )
        server_config.load_cert_chain(str(certificate), str(key))
        for config in (client_config, server_config):
            # The driver's windows (lean_p2p.driver.host): flow control never waits.
            config.max_data = config.max_stream_data = 32 * 1024 * 1024
            if library == "qh3":
                # qh3 probes the path's MTU itself: the size is set, as for aioquic.
                config.max_datagram_size = datagram_size
                config.probe_datagram_size = False
        self._events = quic.events
        self.client = quic.connection.QuicConnection(configuration=client_config)
        self.server = quic.connection.QuicConnection(
            configuration=server_config,
            original_destination_connection_id=self.client.original_destination_connection_id,
        )
        self.now = 1.0
        self.client.connect(_SERVER, now=self.now)
        completed = 0
        for _ in range(10):
            self._exchange()
            for connection in (self.client, self.server):
                while (event := connection.next_event()) is not None:
                    completed += isinstance(event, self._events.HandshakeCompleted)
        if completed != 2:
            raise RuntimeError("the in-memory QUIC handshake did not complete")
        if library == "aioquic" and datagram_size != self.client._max_datagram_size:
            from lean_p2p.driver.pmtu import set_datagram_size

            # As path-MTU discovery sets it once a probe is acknowledged.
            set_datagram_size(self.client, datagram_size)

    def send(self, data: bytes) -> dict[str, float]:
        """Move ``data`` over a new stream; returns the sender's and the receiver's
        CPU seconds and the datagrams sent."""
        stream_data = self._events.StreamDataReceived
        clock = time.perf_counter
        client, server = self.client, self.server
        send_s = receive_s = 0.0
        datagrams = received = 0
        started = clock()
        stream = client.get_next_available_stream_id()
        client.send_stream_data(stream, data, end_stream=True)
        send_s += clock() - started
        while received < len(data):
            started = clock()
            outgoing = client.datagrams_to_send(now=self.now)
            send_s += clock() - started
            datagrams += len(outgoing)
            started = clock()
            for datagram, _ in outgoing:
                server.receive_datagram(datagram, _CLIENT, now=self.now)
            while (event := server.next_event()) is not None:
                if isinstance(event, stream_data):
                    received += len(event.data)
            # What the receiver answers once the flight is in; its delayed ACK falls
            # due within max_ack_delay at the latest.
            acknowledgements = server.datagrams_to_send(now=self.now)
            if not acknowledgements and received < len(data):
                self.now += _ACK_DELAY_S
                server.handle_timer(self.now)
                acknowledgements = server.datagrams_to_send(now=self.now)
            receive_s += clock() - started
            started = clock()
            for datagram, _ in acknowledgements:
                client.receive_datagram(datagram, _SERVER, now=self.now)
            while client.next_event() is not None:
                pass
            send_s += clock() - started
            self.now += 0.001
        self.now += 1.0  # idle between blocks, as paced gossip is
        self._exchange()
        return {
            "send_s": send_s,
            "receive_s": receive_s,
            "datagrams": datagrams,
        }

    def _exchange(self) -> None:
        for datagram, _ in self.client.datagrams_to_send(now=self.now):
            self.server.receive_datagram(datagram, _CLIENT, now=self.now)
        for datagram, _ in self.server.datagrams_to_send(now=self.now):
            self.client.receive_datagram(datagram, _SERVER, now=self.now)


class QuicUnavailable(RuntimeError):
    """The QUIC library asked for is not installed."""


def _quic_library(library: str) -> Any:
    """The ``configuration``, ``connection`` and ``events`` modules of ``library``."""
    import importlib
    from types import SimpleNamespace

    if library not in ("aioquic", "qh3"):
        raise QuicUnavailable(f"no QUIC library {library!r} here: aioquic or qh3")
    try:
        modules = {
            name: importlib.import_module(f"{library}.quic.{name}")
            for name in ("configuration", "connection", "events")
        }
    except ImportError as error:
        raise QuicUnavailable(
            f"{library} is not installed ({error}); pip install {library}"
        ) from error
    return SimpleNamespace(**modules)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for an in-memory QUIC server (aioquic's needs
    one), written into ``directory``; returns their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "block-path")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = directory / "cert.pem", directory / "key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_path, key_path


def measure(
    block_bytes: int,
    datagram_bytes: int,
    repeats: int,
    directory: Path,
    library: str = "aioquic",
) -> dict[str, Any]:
    """One row: each part's median over ``repeats`` blocks, in milliseconds."""
    from libp2p.pubsub.pb import rpc_pb2

    from lean_p2p.driver import codec
    from lean_p2p.driver.gossip_frames import decode_uvarint, encode_rpc
    from lean_p2p.driver.samples import sample_block
    from lean_p2p.net.protocol import GossipTopic

    topic = "/leanconsensus/12345678/block/ssz_snappy"
    pair = QuicPair(datagram_bytes, directory, library)
    parts: dict[str, list[float]] = {name: [] for name in ("datagrams", *_PARTS)}
    clock = time.perf_counter
    wire = b""
    for index in range(repeats + 1):
        block = sample_block(index + 1, block_bytes)
        began = clock()
        wire = codec.encode_gossip(block)
        encoded = clock()
        frame = encode_rpc(publish=[(topic, wire)])
        framed = clock()
        quic = pair.send(frame)
        length, start = decode_uvarint(bytearray(frame[:10]))
        received = clock()
        rpc = rpc_pb2.RPC()
        rpc.ParseFromString(frame[start : start + length])
        parsed = clock()
        _, payload = codec.gossip_message_id(topic, rpc.publish[0].data)
        identified = clock()
        if payload is None or codec.decode_gossip(GossipTopic.BLOCK, payload) != block:
            raise RuntimeError("the block did not survive its own path")
        decoded = clock()
        if index == 0:
            continue  # the first block warms the caches and the congestion window
        milliseconds = {
            "encode_ms": encoded - began,
            "frame_ms": framed - encoded,
            "quic_send_ms": quic["send_s"],
            "quic_receive_ms": quic["receive_s"],
            "parse_ms": parsed - received,
            "message_id_ms": identified - parsed,
            "decode_ms": decoded - identified,
        }
        for name, seconds in milliseconds.items():
            parts[name].append(seconds * 1e3)
        parts["datagrams"].append(quic["datagrams"])
    row: dict[str, Any] = {
        "quic": library,
        "block_bytes": block_bytes,
        "wire_bytes": len(wire),
        "datagram_bytes": datagram_bytes,
        "repeats": repeats,
    }
    for name, values in parts.items():
        row[name] = statistics.median(values)
    row["cpu_total_ms"] = sum(row[name] for name in _PARTS)
    return row


def run_benchmark(args: argparse.Namespace) -> int:
    sizes: Sequence[int] = args.block_sizes
    datagrams: Sequence[int] = args.datagram_sizes
    libraries: Sequence[str] = args.quic
    for library in libraries:
        try:
            _quic_library(library)
        except QuicUnavailable as error:
            print(f"bench block-path: {error}", file=sys.stderr)
            return 2
    progress = Progress("bench block-path")
    rows: list[dict[str, Any]] = []
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True

    with INTERRUPTS.stopping(stop), tempfile.TemporaryDirectory() as scratch:
        for library in libraries:
            for block_bytes in sizes:
                for datagram_bytes in datagrams:
                    if stopped:
                        break
                    repeats = args.repeats or (3 if args.quick else _default_repeats(block_bytes))
                    progress.update(
                        f"{library}: {block_bytes:,}-byte blocks in {datagram_bytes:,}-byte "
                        f"datagrams ({repeats} blocks)",
                        force=True,
                    )
                    rows.append(
                        measure(block_bytes, datagram_bytes, repeats, Path(scratch), library)
                    )
    progress.done()
    report.print_table(
        rows,
        COLUMNS,
        title="one block's path through the lean driver, part by part (CPU ms per block, medians)",
    )
    if args.json:
        report.write_json(args.json, rows)
    return 0


def _default_repeats(block_bytes: int) -> int:
    return 5 if block_bytes >= 1_000_000 else 15
