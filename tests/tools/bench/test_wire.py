"""The wire benchmark compares like with like: every library encodes the same bytes."""

from __future__ import annotations

import argparse
from pathlib import Path

import cramjam
import pytest

from lean_p2p.cli.bench import wire as wire_command
from lean_p2p.containers import PRODUCTION_SCHEME, using_signature_scheme
from lean_p2p.tools.bench import wire


@pytest.fixture(scope="module")
def objects() -> dict[str, object]:
    with using_signature_scheme(PRODUCTION_SCHEME):
        return wire.sample_objects()


@pytest.mark.parametrize("name", ["py-ssz", "remerkleable"])
def test_alternatives_encode_and_hash_the_same(name: str, objects: dict[str, object]) -> None:
    lean = wire.LeanP2P()
    (other,) = wire._implementations([name], PRODUCTION_SCHEME.signature_size)
    with using_signature_scheme(PRODUCTION_SCHEME):
        for kind, value in objects.items():
            encoded = lean.encode(kind, value)
            assert lean.decode(kind, encoded) == value
            theirs = other.decode(kind, encoded)
            assert other.encode(kind, theirs) == encoded, kind
            if kind != "SignedAttestation":  # they hash a signature as plain bytes
                assert other.root(kind, theirs) == lean.root(kind, value), kind


def test_timing_takes_the_median() -> None:
    calls: list[int] = []
    seconds = wire.seconds_per_call(lambda: calls.append(1), wire.Timing(3, 0.0))
    assert seconds >= 0
    assert len(calls) == 4  # one warm-up, then one call per run


def test_snappy_cases_round_trip() -> None:
    data = wire._snappy_payload(5000)
    from lean_p2p.wire.snappy import compress_block, compress_frames

    for _fmt, _name, compress, decompress in wire._snappy_cases(
        data, compress_block(data), compress_frames(data)
    ):
        assert compress()
        result = decompress()
        assert isinstance(result, bytes | cramjam.Buffer)
        assert bytes(result) == data


def test_configure_accepts_the_documented_options() -> None:
    parser = argparse.ArgumentParser()
    wire_command.configure(parser)
    args = parser.parse_args(["--quick", "--json", "out.json", "--impl", "lean_p2p"])
    assert args.quick and args.json == Path("out.json") and args.impl == ["lean_p2p"]


def test_a_missing_reference_package_is_named_with_the_extra_that_brings_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def without_ssz(name: str, *args: object) -> object:
        return None if name == "ssz" else real_find_spec(name)

    monkeypatch.setattr(importlib.util, "find_spec", without_ssz)
    assert wire.missing_implementations(None) == ["py-ssz"]
    assert wire.missing_implementations(["lean_p2p"]) == []
    args = argparse.Namespace(quick=True, json=None, repeats=1, impl=None)
    assert wire_command.run(args) == 2
    error = capsys.readouterr().err
    assert "py-ssz not installed" in error
    assert "lean-p2p[bench]" in error
