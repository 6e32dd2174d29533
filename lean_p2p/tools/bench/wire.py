"""``lean-p2p bench wire``: SSZ and snappy throughput. Main thread of the CLI process.

SSZ: encode, decode and hash_tree_root per second of a SignedAttestation (production
signature size), a SignedBlock carrying 8 aggregated attestations, and a State with
4096 validators and 10,000 historical roots, for lean_p2p's codec side by side with the
``ssz`` package (py-ssz) and ``remerkleable`` on the same bytes. ``root/s`` hashes the
same value again and again for lean_p2p and py-ssz (neither caches roots); remerkleable
caches every node's root, so its figure is the first root of a freshly decoded value.

Snappy: raw blocks and frames at 1 KB, 100 KB and 10 MB, lean_p2p's frame decoder
(limits and CRC-32C in Python over native snappy blocks) beside cramjam's all-native
frame codec.

Every figure is the median of ``--repeats`` timed runs.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SSZ_COLUMNS = ["object", "impl", "bytes", "encode/s", "decode/s", "root/s", "gossip decode/s"]
SNAPPY_COLUMNS = ["format", "impl", "size", "compress MB/s", "decompress MB/s", "decompress/s"]


# -- timing ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    repeats: int
    min_seconds: float


def seconds_per_call(function: Callable[[], object], timing: Timing) -> float:
    """Median over ``repeats`` runs of the mean time per call (each run >= min_seconds)."""
    function()  # warm up (imports, caches of the type objects)
    samples = []
    for _ in range(timing.repeats):
        calls = 0
        started = time.perf_counter()
        elapsed = 0.0
        while elapsed < timing.min_seconds or calls == 0:
            function()
            calls += 1
            elapsed = time.perf_counter() - started
        samples.append(elapsed / calls)
    samples.sort()
    return samples[len(samples) // 2]


# -- sample objects --------------------------------------------------------------------


def _random(size: int, seed: int) -> bytes:
    import random

    return random.Random(seed).randbytes(size)


def _field_elements(count: int, seed: int) -> bytes:
    """``count`` random KoalaBear field elements, as a signature carries them."""
    import random
    import struct

    from lean_p2p.containers.xmss import FIELD_MODULUS

    generator = random.Random(seed)
    values = [generator.randrange(FIELD_MODULUS) for _ in range(count)]
    return struct.pack(f"<{count}I", *values)


def sample_objects() -> dict[str, Any]:
    """The three benchmark objects, built with lean_p2p's containers."""
    from lean_p2p.containers import (
        PRODUCTION_SCHEME,
        AggregatedAttestation,
        AttestationData,
        Bitlist,
        Block,
        BlockBody,
        BlockHeader,
        Checkpoint,
        Config,
        MultiMessageAggregate,
        SignedAttestation,
        SignedBlock,
        State,
        Validator,
    )
    from lean_p2p.containers.xmss import signature_from_parts

    def checkpoint(seed: int, slot: int) -> Checkpoint:
        return Checkpoint(_random(32, seed), slot)

    def data(seed: int) -> AttestationData:
        return AttestationData(
            100 + seed, checkpoint(seed, 100), checkpoint(50, 99), checkpoint(7, 96)
        )

    scheme = PRODUCTION_SCHEME
    signature = signature_from_parts(
        _field_elements(scheme.rand_length, 1),
        _field_elements(scheme.log_lifetime * scheme.hash_length, 2),
        _field_elements(scheme.dimension * scheme.hash_length, 3),
        scheme,
    )
    attestation = SignedAttestation(17, data(0), signature)
    attestations = tuple(
        AggregatedAttestation(Bitlist.from_indices(4096, range(index, 4096, 3)), data(index))
        for index in range(8)
    )
    block = SignedBlock(
        Block(101, 5, _random(32, 4), _random(32, 5), BlockBody(attestations)),
        MultiMessageAggregate(_random(64 * 1024, 6)),
    )
    validators = tuple(
        Validator(_random(52, 10_000 + i), _random(52, 20_000 + i), i) for i in range(4096)
    )
    state = State(
        config=Config(1_700_000_000),
        slot=10_000,
        latest_block_header=BlockHeader(10_000, 3, _random(32, 7), _random(32, 8), _random(32, 9)),
        latest_justified=checkpoint(11, 9_990),
        latest_finalized=checkpoint(12, 9_980),
        historical_block_hashes=tuple(_random(32, 30_000 + i) for i in range(10_000)),
        justified_slots=Bitlist.from_indices(10_000, range(0, 10_000, 2)),
        validators=validators,
        justifications_roots=(_random(32, 13),),
        justifications_validators=Bitlist.from_indices(4096, range(0, 4096, 2)),
    )
    return {
        "SignedAttestation": attestation,
        "SignedBlock(8 att)": block,
        "State(4096 val)": state,
    }


# -- implementations -------------------------------------------------------------------


class Implementation:
    """One SSZ library: converts a lean_p2p value into its own, then times the codec."""

    name = ""

    def convert(self, value: Any) -> Any:
        return value

    def encode(self, kind: str, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, kind: str, data: bytes) -> Any:
        raise NotImplementedError

    def root(self, kind: str, value: Any) -> bytes:
        raise NotImplementedError


class LeanP2P(Implementation):
    name = "lean_p2p"

    def __init__(self) -> None:
        from lean_p2p.containers import SignedAttestation, SignedBlock, State

        self.types: dict[str, Any] = {
            "SignedAttestation": SignedAttestation,
            "SignedBlock(8 att)": SignedBlock,
            "State(4096 val)": State,
        }

    def encode(self, kind: str, value: Any) -> bytes:
        encoded: bytes = value.encode()
        return encoded

    def decode(self, kind: str, data: bytes) -> Any:
        return self.types[kind].decode(data)

    def root(self, kind: str, value: Any) -> bytes:
        root: bytes = value.hash_tree_root()
        return root


class PySSZ(Implementation):
    """The ``ssz`` package (py-ssz): sedes objects over tuples."""

    name = "py-ssz"

    def __init__(self, signature_size: int) -> None:
        sedes: Any = importlib.import_module("ssz.sedes")

        bytes32 = sedes.ByteVector(32)
        uint64 = sedes.uint64
        checkpoint = sedes.Container([bytes32, uint64])
        data = sedes.Container([uint64, checkpoint, checkpoint, checkpoint])
        proof = sedes.ByteList(512 * 1024)
        aggregated = sedes.Container([sedes.Bitlist(4096), data])
        block = sedes.Container(
            [uint64, uint64, bytes32, bytes32, sedes.Container([sedes.List(aggregated, 4096)])]
        )
        header = sedes.Container([uint64, uint64, bytes32, bytes32, bytes32])
        validator = sedes.Container([sedes.ByteVector(52), sedes.ByteVector(52), uint64])
        self.sedes: dict[str, Any] = {
            "SignedAttestation": sedes.Container([uint64, data, sedes.ByteVector(signature_size)]),
            "SignedBlock(8 att)": sedes.Container([block, sedes.Container([proof])]),
            "State(4096 val)": sedes.Container(
                [
                    sedes.Container([uint64]),
                    uint64,
                    header,
                    checkpoint,
                    checkpoint,
                    sedes.List(bytes32, 2**18),
                    sedes.Bitlist(2**18),
                    sedes.List(validator, 4096),
                    sedes.List(bytes32, 2**18),
                    sedes.Bitlist(2**30),
                ]
            ),
        }

    def convert(self, value: Any) -> Any:
        from dataclasses import fields, is_dataclass

        from lean_p2p.containers import Bitlist

        if isinstance(value, Bitlist):
            return tuple(value)
        if is_dataclass(value):
            return tuple(self.convert(getattr(value, f.name)) for f in fields(value))
        if isinstance(value, tuple):
            return tuple(self.convert(item) for item in value)
        return value

    def encode(self, kind: str, value: Any) -> bytes:
        encoded: bytes = self.sedes[kind].serialize(value)
        return encoded

    def decode(self, kind: str, data: bytes) -> Any:
        return self.sedes[kind].deserialize(data)

    def root(self, kind: str, value: Any) -> bytes:
        root: bytes = self.sedes[kind].get_hash_tree_root(value)
        return root


class Remerkleable(Implementation):
    """``remerkleable``: typed views over a binary Merkle tree (roots cached in nodes)."""

    name = "remerkleable"

    def __init__(self, signature_size: int) -> None:
        from remerkleable.basic import uint64
        from remerkleable.bitfields import Bitlist
        from remerkleable.byte_arrays import ByteList, Bytes32, ByteVector
        from remerkleable.complex import Container, List

        def container(name: str, **fields: Any) -> Any:
            # Built with type() so the field types are objects, not postponed strings.
            return type(name, (Container,), {"__annotations__": fields})

        checkpoint = container("Checkpoint", root=Bytes32, slot=uint64)
        data = container(
            "AttestationData", slot=uint64, head=checkpoint, target=checkpoint, source=checkpoint
        )
        SignedAttestation = container(
            "SignedAttestation",
            validator_index=uint64,
            data=data,
            signature=ByteVector[signature_size],
        )
        aggregated = container("AggregatedAttestation", aggregation_bits=Bitlist[4096], data=data)
        body = container("BlockBody", attestations=List[aggregated, 4096])
        block = container(
            "Block",
            slot=uint64,
            proposer_index=uint64,
            parent_root=Bytes32,
            state_root=Bytes32,
            body=body,
        )
        proof = container("MultiMessageAggregate", proof=ByteList[512 * 1024])
        SignedBlock = container("SignedBlock", block=block, proof=proof)
        header = container(
            "BlockHeader",
            slot=uint64,
            proposer_index=uint64,
            parent_root=Bytes32,
            state_root=Bytes32,
            body_root=Bytes32,
        )
        validator = container(
            "Validator",
            attestation_public_key=ByteVector[52],
            proposal_public_key=ByteVector[52],
            index=uint64,
        )
        State = container(
            "State",
            config=container("Config", genesis_time=uint64),
            slot=uint64,
            latest_block_header=header,
            latest_justified=checkpoint,
            latest_finalized=checkpoint,
            historical_block_hashes=List[Bytes32, 2**18],
            justified_slots=Bitlist[2**18],
            validators=List[validator, 4096],
            justifications_roots=List[Bytes32, 2**18],
            justifications_validators=Bitlist[2**30],
        )

        self.types: dict[str, Any] = {
            "SignedAttestation": SignedAttestation,
            "SignedBlock(8 att)": SignedBlock,
            "State(4096 val)": State,
        }

    def encode(self, kind: str, value: Any) -> bytes:
        encoded: bytes = value.encode_bytes()
        return encoded

    def decode(self, kind: str, data: bytes) -> Any:
        return self.types[kind].decode_bytes(data)

    def root(self, kind: str, value: Any) -> bytes:
        return bytes(value.hash_tree_root())


#: implementation -> the module it needs beyond the library (``lean-p2p[bench]``)
BENCH_EXTRA_MODULES = {"py-ssz": "ssz", "remerkleable": "remerkleable"}


def missing_implementations(selected: list[str] | None) -> list[str]:
    """The chosen implementations whose package is not installed."""
    chosen = selected or ["lean_p2p", "py-ssz", "remerkleable"]
    return [
        name
        for name in chosen
        if name in BENCH_EXTRA_MODULES
        and importlib.util.find_spec(BENCH_EXTRA_MODULES[name]) is None
    ]


def _implementations(selected: list[str] | None, signature_size: int) -> list[Implementation]:
    chosen = selected or ["lean_p2p", "py-ssz", "remerkleable"]
    factories: dict[str, Callable[[], Implementation]] = {
        "lean_p2p": LeanP2P,
        "py-ssz": lambda: PySSZ(signature_size),
        "remerkleable": lambda: Remerkleable(signature_size),
    }
    return [factories[name]() for name in chosen]


# -- the benchmark ---------------------------------------------------------------------


def _ssz_calls(
    implementation: Implementation, kind: str, value: Any, encoded: bytes, gossip: bytes
) -> tuple[Callable[[], object], ...]:
    """encode, decode, gossip decode (snappy + SSZ), root."""
    from lean_p2p.wire.snappy import decompress_block

    return (
        lambda: implementation.encode(kind, value),
        lambda: implementation.decode(kind, encoded),
        lambda: implementation.decode(kind, decompress_block(gossip)),
        lambda: implementation.root(kind, value),
    )


def _cold_root_seconds(
    implementation: Implementation, kind: str, encoded: bytes, timing: Timing
) -> float:
    """Median time of the first root of freshly decoded values (nothing cached yet)."""
    samples = []
    for _ in range(max(timing.repeats, 3)):
        fresh = implementation.decode(kind, encoded)
        started = time.perf_counter()
        implementation.root(kind, fresh)
        samples.append(time.perf_counter() - started)
    samples.sort()
    return samples[len(samples) // 2]


def _ssz_rows(implementations: list[Implementation], timing: Timing) -> list[dict[str, Any]]:
    from lean_p2p.containers import PRODUCTION_SCHEME, using_signature_scheme
    from lean_p2p.wire.snappy import compress_block

    rows: list[dict[str, Any]] = []
    with using_signature_scheme(PRODUCTION_SCHEME):
        objects = sample_objects()
        reference = {kind: value.encode() for kind, value in objects.items()}
        for kind, lean_value in objects.items():
            encoded = reference[kind]
            gossip = compress_block(encoded)
            for implementation in implementations:
                if implementation.name == "remerkleable":
                    value = implementation.decode(kind, encoded)
                else:
                    value = implementation.convert(lean_value)
                if implementation.encode(kind, value) != encoded:
                    raise AssertionError(f"{implementation.name} encodes {kind} differently")

                calls = _ssz_calls(implementation, kind, value, encoded, gossip)
                encode, decode, gossip_decode, root = calls
                encode_time = seconds_per_call(encode, timing)
                decode_time = seconds_per_call(decode, timing)
                gossip_time = seconds_per_call(gossip_decode, timing)
                if isinstance(implementation, Remerkleable):
                    root_time = _cold_root_seconds(implementation, kind, encoded, timing)
                else:
                    root_time = seconds_per_call(root, timing)
                rows.append(
                    {
                        "object": kind,
                        "impl": implementation.name,
                        "bytes": len(encoded),
                        "encode/s": 1 / encode_time,
                        "decode/s": 1 / decode_time,
                        "root/s": 1 / root_time,
                        "gossip decode/s": 1 / gossip_time,
                    }
                )
    return rows


def _snappy_payload(size: int) -> bytes:
    """SSZ-like bytes: random roots and signatures interleaved with zero padding."""
    pattern = _random(96, 42) + bytes(32)
    return (pattern * (size // len(pattern) + 1))[:size]


def _snappy_cases(
    data: bytes, block: bytes, framed: bytes
) -> list[tuple[str, str, Callable[[], object], Callable[[], object]]]:
    """(format, implementation, compress, decompress) for one payload."""
    import cramjam

    from lean_p2p.wire.snappy import (
        compress_block,
        compress_frames,
        decompress_block,
        decompress_frames,
    )

    return [
        ("raw", "lean_p2p", lambda: compress_block(data), lambda: decompress_block(block)),
        ("framed", "lean_p2p", lambda: compress_frames(data), lambda: decompress_frames(framed)),
        (
            "framed",
            "cramjam",
            lambda: cramjam.snappy.compress(data),
            lambda: cramjam.snappy.decompress(framed),
        ),
    ]


def _snappy_rows(timing: Timing, sizes: list[int]) -> list[dict[str, Any]]:
    from lean_p2p.wire.snappy import compress_block, compress_frames

    rows: list[dict[str, Any]] = []
    for size in sizes:
        data = _snappy_payload(size)
        block = compress_block(data)
        framed = compress_frames(data)
        cases = _snappy_cases(data, block, framed)
        for fmt, name, compress, decompress in cases:
            compress_time = seconds_per_call(compress, timing)
            decompress_time = seconds_per_call(decompress, timing)
            rows.append(
                {
                    "format": fmt,
                    "impl": name,
                    "size": size,
                    "compress MB/s": size / compress_time / 1e6,
                    "decompress MB/s": size / decompress_time / 1e6,
                    "decompress/s": 1 / decompress_time,
                }
            )
    return rows


def run_benchmark(args: argparse.Namespace) -> int:
    from lean_p2p.containers import PRODUCTION_SCHEME
    from lean_p2p.tools.report import print_table, write_json
    from lean_p2p.tools.running import Progress

    missing = missing_implementations(args.impl)
    if missing:
        print(
            f"bench wire: {', '.join(missing)} not installed; they are the references this "
            "benchmark compares against: pip install 'lean-p2p[bench]', or choose "
            "--impl lean_p2p",
            file=sys.stderr,
        )
        return 2
    quick: bool = args.quick
    timing = Timing(repeats=args.repeats or (3 if quick else 7), min_seconds=0.05 if quick else 0.3)
    implementations = _implementations(args.impl, PRODUCTION_SCHEME.signature_size)
    print(f"pid {os.getpid()}: {timing.repeats} runs of >= {timing.min_seconds}s per figure")
    progress = Progress("bench wire")
    names = ", ".join(implementation.name for implementation in implementations)
    progress.update(f"SSZ: {names}", force=True)
    ssz_rows = _ssz_rows(implementations, timing)
    progress.done()
    print_table(ssz_rows, SSZ_COLUMNS, title="SSZ (median per-second rates)")
    sizes = [1_000, 100_000, 10_000_000]
    progress.update("snappy: blocks and frames at 1 KB, 100 KB, 10 MB", force=True)
    snappy_rows = _snappy_rows(timing, sizes)
    progress.done()
    print_table(snappy_rows, SNAPPY_COLUMNS, title="snappy (median)")
    if args.json:
        rows = [{"section": "ssz", **row} for row in ssz_rows]
        rows += [{"section": "snappy", **row} for row in snappy_rows]
        write_json(args.json, rows)
    return 0
