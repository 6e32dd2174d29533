"""Record every event the loop handles to a file, and read it back for replay.

Encoding happens on the loop thread (inside the handler, in handling order); file writes
happen on a dedicated writer thread so the loop never blocks on disk. Reading is plain
file I/O for any thread.

File format (all integers big-endian)::

    magic  b"LEANREC1"
    u32 header length, header: UTF-8 JSON (node name, genesis, duties, version)
    records, each: u32 length, then
        f64 the node clock's time (Unix seconds) when the item was handled
        value: the lane name (str), then the item

Values are self-describing, so new event types need no format change: ``N`` None,
``T``/``F`` booleans, ``I`` integer (u8 length + signed bytes), ``D`` float, ``S`` str,
``Y`` bytes, ``L`` tuple, ``E`` enum (class name + member value), ``C`` SSZ container
(class name + its SSZ bytes), ``O`` frozen dataclass (class name + fields in order).
Classes are resolved by name in a registry (net events, protocol enums, containers,
the node's control events); an unknown name is a :class:`RecordingError`, never a guess.
A truncated last record (the process died mid-write) is reported, not fatal.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import queue
import struct
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "MAGIC",
    "RecordedItem",
    "Recorder",
    "Recording",
    "RecordingError",
    "TypeRegistry",
    "decode_value",
    "default_registry",
    "encode_value",
    "read_recording",
]

MAGIC = b"LEANREC1"
_LENGTH = struct.Struct(">I")
_FLOAT = struct.Struct(">d")
_FIELD_COUNT = struct.Struct(">H")
_MAX_RECORD_BYTES = 64 * 1024 * 1024  # a corrupt length must not allocate gigabytes
_FLUSH_BYTES = 256 * 1024


class RecordingError(ValueError):
    """A recording that cannot be read: bad magic, unknown type, corrupt record."""


class TypeRegistry:
    """Class name -> class for every type a recording may contain."""

    def __init__(self) -> None:
        self._classes: dict[str, type] = {}

    def register(self, cls: type) -> None:
        existing = self._classes.get(cls.__name__)
        if existing is not None and existing is not cls:
            raise ValueError(f"two recordable types named {cls.__name__!r}")
        self._classes[cls.__name__] = cls

    def register_module(self, module_name: str) -> None:
        """Register every public dataclass and enum a module defines."""
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if isinstance(value, type) and (
                dataclasses.is_dataclass(value) or issubclass(value, enum.Enum)
            ):
                self.register(value)

    def resolve(self, name: str) -> type:
        try:
            return self._classes[name]
        except KeyError:
            raise RecordingError(f"recording names unknown type {name!r}") from None


_default: TypeRegistry | None = None


def default_registry() -> TypeRegistry:
    """Net events, protocol enums, containers and the node's control events."""
    global _default
    if _default is None:
        registry = TypeRegistry()
        for module_name in (
            "lean_p2p.net.events",
            "lean_p2p.net.protocol",
            "lean_p2p.net.commands",
            "lean_p2p.containers",
            "lean_p2p.node.control",
            "lean_p2p.node.verification",
        ):
            registry.register_module(module_name)
        _default = registry
    return _default


def _is_container(value: object) -> bool:
    return type(value).__module__.startswith("lean_p2p.containers") and hasattr(value, "encode")


def _put_text(out: bytearray, text: str) -> None:
    raw = text.encode()
    out += _LENGTH.pack(len(raw))
    out += raw


def encode_value(value: object, out: bytearray) -> None:
    """Append the self-describing encoding of ``value`` to ``out``."""
    if value is None:
        out += b"N"
    elif value is True:
        out += b"T"
    elif value is False:
        out += b"F"
    elif isinstance(value, enum.Enum):
        out += b"E"
        _put_text(out, type(value).__name__)
        encode_value(value.value, out)
    elif isinstance(value, int):
        raw = value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)
        out += b"I" + bytes([len(raw)]) + raw
    elif isinstance(value, float):
        out += b"D" + _FLOAT.pack(value)
    elif isinstance(value, str):
        out += b"S"
        _put_text(out, value)
    elif isinstance(value, bytes | bytearray | memoryview):
        out += b"Y" + _LENGTH.pack(len(value))
        out += value
    elif isinstance(value, tuple | list):
        out += b"L" + _LENGTH.pack(len(value))
        for element in value:
            encode_value(element, out)
    elif _is_container(value):
        out += b"C"
        _put_text(out, type(value).__name__)
        encoded: bytes = value.encode()  # type: ignore[attr-defined]
        out += _LENGTH.pack(len(encoded))
        out += encoded
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        out += b"O"
        _put_text(out, type(value).__name__)
        out += _FIELD_COUNT.pack(len(fields))
        for field in fields:
            encode_value(getattr(value, field.name), out)
    else:
        raise TypeError(f"cannot record a {type(value).__name__}")


class _Reader:
    __slots__ = ("data", "position", "registry")

    def __init__(self, data: bytes, registry: TypeRegistry) -> None:
        self.data = data
        self.position = 0
        self.registry = registry

    def take(self, size: int) -> bytes:
        end = self.position + size
        if end > len(self.data):
            raise RecordingError("record ends mid-value")
        chunk = self.data[self.position : end]
        self.position = end
        return chunk

    def length(self) -> int:
        value: int = _LENGTH.unpack(self.take(4))[0]
        return value

    def text(self) -> str:
        try:
            return self.take(self.length()).decode()
        except UnicodeDecodeError as error:
            raise RecordingError(f"bad text in record: {error}") from error

    def value(self) -> Any:
        tag = self.take(1)
        match tag:
            case b"N":
                return None
            case b"T":
                return True
            case b"F":
                return False
            case b"I":
                return int.from_bytes(self.take(self.take(1)[0]), "big", signed=True)
            case b"D":
                return _FLOAT.unpack(self.take(8))[0]
            case b"S":
                return self.text()
            case b"Y":
                return self.take(self.length())
            case b"L":
                return tuple(self.value() for _ in range(self.length()))
            case b"E":
                cls = self.registry.resolve(self.text())
                try:
                    return cls(self.value())
                except ValueError as error:
                    raise RecordingError(str(error)) from error
            case b"C":
                cls = self.registry.resolve(self.text())
                encoded = self.take(self.length())
                try:
                    return cls.decode(encoded)  # type: ignore[attr-defined]
                except Exception as error:  # the codec's own typed error, whatever it is
                    raise RecordingError(f"{cls.__name__} does not decode: {error}") from error
            case b"O":
                cls = self.registry.resolve(self.text())
                count = _FIELD_COUNT.unpack(self.take(2))[0]
                values = [self.value() for _ in range(count)]
                try:
                    return cls(*values)
                except TypeError as error:
                    raise RecordingError(f"{cls.__name__}: {error}") from error
            case _:
                raise RecordingError(f"unknown value tag {tag!r}")


def decode_value(data: bytes, registry: TypeRegistry | None = None) -> Any:
    reader = _Reader(data, registry or default_registry())
    value = reader.value()
    if reader.position != len(data):
        raise RecordingError("trailing bytes after value")
    return value


@dataclass(frozen=True, slots=True)
class RecordedItem:
    time: float  # the node clock's time (Unix seconds) when the item was handled
    lane: str
    item: object


@dataclass(frozen=True, slots=True)
class Recording:
    header: Mapping[str, Any]
    items: tuple[RecordedItem, ...]
    truncated: bool  # the last record was cut short (writer died mid-record)

    @property
    def duration(self) -> float:
        """Seconds of node-clock time from the first to the last record."""
        return self.items[-1].time - self.items[0].time if self.items else 0.0


def _read_header(stream: BinaryIO) -> dict[str, Any]:
    if stream.read(len(MAGIC)) != MAGIC:
        raise RecordingError("not a lean-p2p recording (bad magic)")
    raw_length = stream.read(4)
    if len(raw_length) != 4:
        raise RecordingError("recording header is truncated")
    raw = stream.read(_LENGTH.unpack(raw_length)[0])
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RecordingError(f"recording header is not JSON: {error}") from error
    if not isinstance(header, dict):
        raise RecordingError("recording header must be a JSON object")
    return header


def iter_records(path: Path, registry: TypeRegistry | None = None) -> Iterator[RecordedItem | None]:
    """Yield each record; a final ``None`` means the last record was truncated."""
    types = registry or default_registry()
    with path.open("rb") as stream:
        _read_header(stream)
        while raw_length := stream.read(4):
            if len(raw_length) < 4:
                yield None
                return
            length = _LENGTH.unpack(raw_length)[0]
            if length > _MAX_RECORD_BYTES:
                raise RecordingError(f"record of {length} bytes: corrupt length")
            payload = stream.read(length)
            if len(payload) < length:
                yield None
                return
            reader = _Reader(payload, types)
            handled_at = _FLOAT.unpack(reader.take(8))[0]
            lane = reader.value()
            item = reader.value()
            if not isinstance(lane, str) or reader.position != length:
                raise RecordingError("malformed record")
            yield RecordedItem(handled_at, lane, item)


def read_recording(path: Path, registry: TypeRegistry | None = None) -> Recording:
    with path.open("rb") as stream:
        header = _read_header(stream)
    items: list[RecordedItem] = []
    truncated = False
    for record in iter_records(path, registry):
        if record is None:
            truncated = True
        else:
            items.append(record)
    return Recording(header, tuple(items), truncated)


class Recorder:
    """Appends handled items to a recording file without blocking the loop.

    :meth:`record` (loop thread) encodes into a buffer; full buffers go to a writer
    thread through a :class:`queue.SimpleQueue` (``put`` never blocks). :meth:`close`
    flushes and waits for the writer: call it off the loop (``asyncio.to_thread``) or
    at shutdown.
    """

    def __init__(self, path: Path, header: Mapping[str, Any]) -> None:
        self.path = path
        self.records = 0
        self._buffer = bytearray()
        self._chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        encoded_header = json.dumps(dict(header), sort_keys=True).encode()
        self._file = path.open("wb")
        self._file.write(MAGIC + _LENGTH.pack(len(encoded_header)) + encoded_header)
        self._writer = threading.Thread(
            target=self._write_chunks, name=f"recorder:{path.name}", daemon=True
        )
        self._writer.start()
        self._closed = False

    def record(self, handled_at: float, lane: str, item: object) -> None:
        """Append one handled item (loop thread); ``handled_at`` is the node clock's time."""
        if self._closed:
            raise RecordingError("recorder is closed")
        payload = bytearray(_FLOAT.pack(handled_at))
        encode_value(lane, payload)
        encode_value(item, payload)
        self._buffer += _LENGTH.pack(len(payload))
        self._buffer += payload
        self.records += 1
        if len(self._buffer) >= _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered records to the writer thread (never blocks)."""
        if self._error is not None:  # the disk failed: say so instead of buffering forever
            raise RecordingError(f"writing {self.path} failed: {self._error}") from self._error
        if self._buffer:
            self._chunks.put(bytes(self._buffer))
            self._buffer.clear()

    def _write_chunks(self) -> None:
        try:
            while (chunk := self._chunks.get()) is not None:
                self._file.write(chunk)
            self._file.flush()
        except BaseException as error:  # surfaced by close(), never swallowed
            self._error = error
        finally:
            self._file.close()

    def close(self) -> None:
        """Flush everything and wait for the writer thread (blocking: not on the loop)."""
        if self._closed:
            return
        self._closed = True
        if self._buffer and self._error is None:
            self._chunks.put(bytes(self._buffer))
            self._buffer.clear()
        self._chunks.put(None)
        self._writer.join()
        if self._error is not None:
            raise RecordingError(f"writing {self.path} failed: {self._error}") from self._error
