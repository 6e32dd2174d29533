"""XMSS key generation and signing with real keys, byte-exact with leanSpec. Any thread.

A secret key is leanSpec's ``SecretKey``: a 32-byte PRF key, the public parameter, the
activation interval, the whole top tree, and the two bottom trees around the slots it
is about to sign (the *prepared* interval). The heavy work is in C
(``bindings/lean_p2p_xmss.c``): every leaf's chains from their PRF-derived starts, each
tree layer, and the one-time part of a signature. This module assembles trees and
paths exactly as leanSpec's ``key_gen``, ``sign`` and ``advance_preparation`` do, and
encodes keys in leanSpec's SSZ, so a key made here loads in leanSpec and back.

**Deterministic from a seed.** leanSpec draws the parameter, the PRF key, and the
random digests that pad sparse tree layers from the operating system. Here every draw
comes from a seeded stream instead, in leanSpec's order (the parameter, the PRF key,
one pad per bottom tree, then the top tree's pads from the bottom up), so a devnet's
keys are reproducible from its seed, and a leanSpec whose draws are replaced by the
same stream (``scripts/gen_xmss_vectors.py``) generates the same key, byte for byte.
Draw *i* is ``SHAKE128(DOMAIN || len(seed) || seed || i)``; a field element is 16 bytes
of it, big-endian, reduced mod p (as leanSpec's PRF reduces). Keep the seed secret: it
is the key.

**Threads.** Key generation computes leaves on ``workers`` threads; ctypes releases the
GIL for each call into C, so they run in parallel, and any thread may generate or sign.
A secret key is immutable: :func:`advance_preparation` returns a new one.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import os
import struct
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

from lean_p2p.containers.scheme import XmssScheme, active_scheme
from lean_p2p.containers.xmss import FIELD_MODULUS, signature_from_parts
from lean_p2p.crypto.xmss import config_id, library

__all__ = [
    "SEED_DOMAIN",
    "KeyDecodeError",
    "KeyGenerationStopped",
    "SlotNotPrepared",
    "SlotOutsideKey",
    "SubTree",
    "TreeLayer",
    "XmssKeyPair",
    "XmssSecretKey",
    "advance_preparation",
    "generate_key_pair",
    "prepare",
    "sign",
]

#: Prefix of every draw of seeded key generation; changing it changes every key.
SEED_DOMAIN: Final = b"lean_p2p/xmss/keygen/v1"
PRF_KEY_BYTES: Final = 32
DIGEST_BYTES: Final = 32
_ELEMENT_BYTES: Final = 4
_PRF_BYTES_PER_ELEMENT: Final = 16
#: Leaves per call into C while generating: small enough to spread over the workers,
#: large enough that the call's overhead vanishes (a production leaf is ~1 ms of C).
_LEAVES_PER_CALL: Final = 256
_ERR_NO_ENCODING: Final = -7

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class SlotOutsideKey(ValueError):
    """The slot is not in the key's activation interval: this key can never sign it."""


class SlotNotPrepared(ValueError):
    """The slot is in the key's interval but not its prepared one: advance the key."""


class KeyGenerationStopped(RuntimeError):
    """Key generation was asked to stop (``should_stop``) before it finished."""


class KeyDecodeError(ValueError):
    """Bytes that are not a secret key of the scheme, in leanSpec's SSZ encoding."""


# ------------------------------------------------------------------ the trees


@dataclass(frozen=True, slots=True)
class TreeLayer:
    """One stored layer of a sparse subtree: ``nodes`` (32-byte digests, concatenated)
    from absolute index ``start_index`` of its level."""

    start_index: int
    nodes: bytes

    @property
    def count(self) -> int:
        return len(self.nodes) // DIGEST_BYTES

    def node(self, index: int) -> bytes:
        """The node at absolute ``index`` of its level."""
        at = (index - self.start_index) * DIGEST_BYTES
        if not 0 <= at < len(self.nodes):
            raise IndexError(f"node {index} is outside this layer")
        return self.nodes[at : at + DIGEST_BYTES]


@dataclass(frozen=True, slots=True)
class SubTree:
    """A slice of a key's lifetime tree, stored layer by layer up to one root node
    (leanSpec's ``HashSubTree``): a bottom tree from the leaves (``lowest_layer`` 0), or
    the top tree from the bottom trees' roots (``lowest_layer`` = depth / 2)."""

    depth: int
    lowest_layer: int
    layers: tuple[TreeLayer, ...]

    def root(self) -> bytes:
        return self.layers[-1].nodes[:DIGEST_BYTES]

    def path(self, position: int) -> bytes:
        """The siblings from the node at ``position`` of the lowest layer up to (not
        including) the root, concatenated."""
        siblings = []
        for layer in self.layers[:-1]:
            siblings.append(layer.node(position ^ 1))
            position //= 2
        return b"".join(siblings)


# ---------------------------------------------------------------- the keys


@dataclass(frozen=True, slots=True)
class XmssSecretKey:
    """leanSpec's ``SecretKey``. Its ``repr`` leaves out the PRF key."""

    scheme: XmssScheme
    prf_key: bytes = field(repr=False)
    parameter: bytes
    activation_slot: int
    num_active_slots: int
    top_tree: SubTree = field(repr=False)
    left_bottom_tree_index: int
    left_bottom_tree: SubTree = field(repr=False)
    right_bottom_tree: SubTree = field(repr=False)

    @property
    def public_key(self) -> bytes:
        """The public key (SSZ): the top tree's root, then the parameter."""
        return self.top_tree.root() + self.parameter

    @property
    def activation_interval(self) -> range:
        return range(self.activation_slot, self.activation_slot + self.num_active_slots)

    @property
    def prepared_interval(self) -> range:
        """The slots the resident bottom trees cover: those it can sign right now."""
        start = self.left_bottom_tree_index * _leaves_per_bottom_tree(self.scheme)
        return range(start, start + 2 * _leaves_per_bottom_tree(self.scheme))

    def to_bytes(self) -> bytes:
        """leanSpec's SSZ encoding of the secret key."""
        fixed_size = PRF_KEY_BYTES + len(self.parameter) + 8 + 8 + 4 + 8 + 4 + 4
        top = _encode_subtree(self.top_tree)
        left = _encode_subtree(self.left_bottom_tree)
        right = _encode_subtree(self.right_bottom_tree)
        return b"".join(
            (
                self.prf_key,
                self.parameter,
                _U64.pack(self.activation_slot),
                _U64.pack(self.num_active_slots),
                _U32.pack(fixed_size),
                _U64.pack(self.left_bottom_tree_index),
                _U32.pack(fixed_size + len(top)),
                _U32.pack(fixed_size + len(top) + len(left)),
                top,
                left,
                right,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes, scheme: XmssScheme | None = None) -> XmssSecretKey:
        """Decode leanSpec's SSZ encoding; :class:`KeyDecodeError` says what is wrong."""
        chosen = scheme or active_scheme()
        parameter_bytes = chosen.parameter_length * _ELEMENT_BYTES
        fixed_size = PRF_KEY_BYTES + parameter_bytes + 8 + 8 + 4 + 8 + 4 + 4
        if len(data) < fixed_size:
            raise KeyDecodeError(f"{len(data)} bytes is shorter than a secret key's fixed part")
        reader = _Reader(data)
        prf_key = reader.take(PRF_KEY_BYTES)
        parameter = reader.take(parameter_bytes)
        _check_elements(parameter, "the parameter")
        activation_slot = reader.u64()
        num_active_slots = reader.u64()
        top_offset = reader.u32()
        left_index = reader.u64()
        left_offset = reader.u32()
        right_offset = reader.u32()
        if not fixed_size == top_offset <= left_offset <= right_offset <= len(data):
            raise KeyDecodeError("the secret key's offsets are not in order")
        top = _decode_subtree(data[top_offset:left_offset], "the top tree")
        left = _decode_subtree(data[left_offset:right_offset], "the left bottom tree")
        right = _decode_subtree(data[right_offset:], "the right bottom tree")
        key = cls(
            chosen,
            prf_key,
            parameter,
            activation_slot,
            num_active_slots,
            top,
            left_index,
            left,
            right,
        )
        _check_shape(key)
        return key


@dataclass(frozen=True, slots=True)
class XmssKeyPair:
    public_key: bytes
    secret_key: XmssSecretKey


# ------------------------------------------------------------ key generation


def generate_key_pair(
    activation_slot: int,
    num_active_slots: int,
    *,
    seed: bytes | None = None,
    scheme: XmssScheme | None = None,
    workers: int | None = None,
    on_bottom_tree: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> XmssKeyPair:
    """A key pair active for at least ``num_active_slots`` slots from ``activation_slot``.

    As leanSpec's ``key_gen``: the interval is widened to whole bottom trees, two at
    least. ``seed`` makes the key reproducible (see the module's docstring); without one
    it is drawn from the operating system. ``workers`` threads compute leaves (default:
    the CPUs); ``on_bottom_tree(done, total)`` is called after each bottom tree, for
    progress (a production bottom tree is 65,536 leaves, tens of seconds of C).
    ``should_stop()`` is asked before every batch of leaves (a fraction of a second of C
    apart); once it says yes, :class:`KeyGenerationStopped` is raised.
    """
    chosen = scheme or active_scheme()
    lifetime = 1 << chosen.log_lifetime
    if activation_slot < 0 or num_active_slots < 0:
        raise ValueError("the activation slot and the number of slots are not negative")
    if activation_slot + num_active_slots > lifetime:
        raise ValueError(
            f"slots {activation_slot}..{activation_slot + num_active_slots} exceed the "
            f"{chosen.name} scheme's lifetime of {lifetime}"
        )
    draws = _SeededDraws(os.urandom(32) if seed is None else seed)
    # leanSpec's order of draws: the parameter, then the PRF key.
    parameter = draws.field_elements(chosen.parameter_length)
    prf_key = draws.raw(PRF_KEY_BYTES)
    first_tree, end_tree = _bottom_tree_range(chosen, activation_slot, num_active_slots)
    width = _leaves_per_bottom_tree(chosen)
    with _LeafPool(workers) as pool:
        trees: list[SubTree] = []
        roots: list[bytes] = []
        for done, tree_index in enumerate(range(first_tree, end_tree), start=1):
            tree = _bottom_tree(
                chosen, prf_key, parameter, tree_index, pool, should_stop=should_stop
            )
            # leanSpec pads each bottom tree's root layer with one draw, then drops it.
            draws.field_elements(chosen.hash_length)
            if len(trees) < 2:
                trees.append(tree)
            roots.append(tree.root())
            if on_bottom_tree is not None:
                on_bottom_tree(done, end_tree - first_tree)
    top = _top_tree(chosen, parameter, first_tree, roots, draws)
    secret_key = XmssSecretKey(
        scheme=chosen,
        prf_key=prf_key,
        parameter=parameter,
        activation_slot=first_tree * width,
        num_active_slots=(end_tree - first_tree) * width,
        top_tree=top,
        left_bottom_tree_index=first_tree,
        left_bottom_tree=trees[0],
        right_bottom_tree=trees[1],
    )
    return XmssKeyPair(secret_key.public_key, secret_key)


def advance_preparation(secret_key: XmssSecretKey, workers: int | None = None) -> XmssSecretKey:
    """The key with its prepared interval one bottom tree further on (leanSpec's
    ``advance_preparation``); the same key when the activation interval has no more."""
    scheme = secret_key.scheme
    width = _leaves_per_bottom_tree(scheme)
    left_index = secret_key.left_bottom_tree_index
    if (left_index + 3) * width > secret_key.activation_slot + secret_key.num_active_slots:
        return secret_key
    with _LeafPool(workers) as pool:
        new_right = _bottom_tree(
            scheme, secret_key.prf_key, secret_key.parameter, left_index + 2, pool
        )
    return XmssSecretKey(
        scheme=scheme,
        prf_key=secret_key.prf_key,
        parameter=secret_key.parameter,
        activation_slot=secret_key.activation_slot,
        num_active_slots=secret_key.num_active_slots,
        top_tree=secret_key.top_tree,
        left_bottom_tree_index=left_index + 1,
        left_bottom_tree=secret_key.right_bottom_tree,
        right_bottom_tree=new_right,
    )


def prepare(secret_key: XmssSecretKey, slot: int, workers: int | None = None) -> XmssSecretKey:
    """The key advanced until ``slot`` is prepared (a signer calls this before
    :func:`sign`). :class:`SlotOutsideKey` if it never can be: a slot before the
    prepared interval or outside the activation interval."""
    if slot not in secret_key.activation_interval or slot < secret_key.prepared_interval.start:
        raise SlotOutsideKey(_outside(secret_key, slot))
    while slot not in secret_key.prepared_interval:
        secret_key = advance_preparation(secret_key, workers)
    return secret_key


# ------------------------------------------------------------------- signing


def sign(secret_key: XmssSecretKey, slot: int, message: bytes) -> bytes:
    """The signature (SSZ) of the 32-byte ``message`` at ``slot``, as leanSpec's
    ``sign``: deterministic in key, slot and message. Never sign two messages at one
    slot: that reveals enough of the one-time key to forge.

    :class:`SlotOutsideKey` or :class:`SlotNotPrepared` if the key cannot sign ``slot``
    now (:func:`prepare` advances it). A production signature is a few milliseconds of
    C without the GIL; call it off the event loop's thread.
    """
    scheme = secret_key.scheme
    if len(message) != 32:
        raise ValueError(f"the message is 32 bytes, not {len(message)}")
    if slot not in secret_key.activation_interval:
        raise SlotOutsideKey(_outside(secret_key, slot))
    prepared = secret_key.prepared_interval
    if slot not in prepared:
        raise SlotNotPrepared(
            f"slot {slot} is outside the prepared interval [{prepared.start}, "
            f"{prepared.stop}): advance the key (lean_p2p.crypto.prepare)"
        )
    rho = ctypes.create_string_buffer(scheme.rand_length * _ELEMENT_BYTES)
    hashes = ctypes.create_string_buffer(scheme.dimension * DIGEST_BYTES)
    result = library().lean_xmss_sign_chains(
        config_id(scheme),
        secret_key.prf_key,
        secret_key.parameter,
        slot,
        message,
        rho,
        hashes,
        None,
    )
    if result == _ERR_NO_ENCODING:
        raise RuntimeError(f"no randomness met the target sum for slot {slot}")
    _check_result(result, "sign")
    width = _leaves_per_bottom_tree(scheme)
    bottom = (
        secret_key.left_bottom_tree
        if slot < prepared.start + width
        else secret_key.right_bottom_tree
    )
    siblings = bottom.path(slot) + secret_key.top_tree.path(slot // width)
    return signature_from_parts(rho.raw, siblings, hashes.raw, scheme)


# ------------------------------------------------------------------ internals


class _SeededDraws:
    """The stream that stands for leanSpec's operating-system randomness."""

    def __init__(self, seed: bytes) -> None:
        if not seed:
            raise ValueError("a key's seed is not empty")
        self._prefix = SEED_DOMAIN + _U32.pack(len(seed)) + bytes(seed)
        self._draws = 0

    def raw(self, length: int) -> bytes:
        draw = self._prefix + self._draws.to_bytes(8, "big")
        self._draws += 1
        return hashlib.shake_128(draw).digest(length)

    def field_elements(self, count: int) -> bytes:
        """``count`` field elements, each encoded as on the wire (4 bytes, little-endian)."""
        data = self.raw(count * _PRF_BYTES_PER_ELEMENT)
        return b"".join(
            _U32.pack(int.from_bytes(data[at : at + _PRF_BYTES_PER_ELEMENT]) % FIELD_MODULUS)
            for at in range(0, len(data), _PRF_BYTES_PER_ELEMENT)
        )


def _leaves_per_bottom_tree(scheme: XmssScheme) -> int:
    return 1 << (scheme.log_lifetime // 2)


def _bottom_tree_range(
    scheme: XmssScheme, activation_slot: int, num_active_slots: int
) -> tuple[int, int]:
    """leanSpec's ``_expand_activation_time``: whole bottom trees, two at least, inside
    the lifetime; as a range of bottom-tree indices."""
    width = _leaves_per_bottom_tree(scheme)
    lifetime = width * width
    start = activation_slot - activation_slot % width
    end = -(-(activation_slot + num_active_slots) // width) * width
    end = max(end, start + 2 * width)
    if end > lifetime:
        duration = end - start
        start, end = (0, lifetime) if duration > lifetime else (lifetime - duration, lifetime)
    return start // width, end // width


class _LeafPool:
    """Runs leaf batches on ``workers`` threads, or inline for one."""

    def __init__(self, workers: int | None) -> None:
        self._workers = max(1, workers if workers is not None else os.cpu_count() or 1)
        self._executor: ThreadPoolExecutor | None = None

    def __enter__(self) -> _LeafPool:
        if self._workers > 1:
            self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="xmss-keygen")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def map(self, function: Callable[[int], bytes], items: range) -> Iterator[bytes]:
        if self._executor is None:
            return map(function, items)
        return self._executor.map(function, items)


def _bottom_tree(
    scheme: XmssScheme,
    prf_key: bytes,
    parameter: bytes,
    tree_index: int,
    pool: _LeafPool,
    *,
    should_stop: Callable[[], bool] | None = None,
) -> SubTree:
    """Bottom tree ``tree_index``, as leanSpec's ``HashSubTree.from_prf_key`` builds it.
    Its layers are whole and aligned, so none is padded; its root layer is the root
    alone, at the tree's index."""
    width = _leaves_per_bottom_tree(scheme)
    first_slot = tree_index * width
    config = config_id(scheme)

    def leaves(batch_start: int) -> bytes:
        if should_stop is not None and should_stop():
            raise KeyGenerationStopped("key generation stopped on request")
        count = min(_LEAVES_PER_CALL, width - batch_start)
        out = ctypes.create_string_buffer(count * DIGEST_BYTES)
        result = library().lean_xmss_leaves(
            config, prf_key, parameter, first_slot + batch_start, count, out
        )
        _check_result(result, "leaves")
        return out.raw

    nodes = b"".join(pool.map(leaves, range(0, width, _LEAVES_PER_CALL)))
    layers = [TreeLayer(first_slot, nodes)]
    start = first_slot
    for level in range(1, scheme.log_lifetime // 2 + 1):
        start //= 2
        nodes = _parents(scheme, parameter, level, start, nodes)
        layers.append(TreeLayer(start, nodes))
    return SubTree(scheme.log_lifetime, 0, tuple(layers))


def _top_tree(
    scheme: XmssScheme, parameter: bytes, first_tree: int, roots: list[bytes], draws: _SeededDraws
) -> SubTree:
    """leanSpec's ``HashSubTree.new_top_tree``: every layer padded to whole sibling
    pairs with drawn digests, the root's layer included."""

    def padded(nodes: bytes, start: int) -> TreeLayer:
        end = start + len(nodes) // DIGEST_BYTES - 1
        # leanSpec draws the left pad before the right one.
        if start % 2 == 1:
            nodes = draws.field_elements(scheme.hash_length) + nodes
        if end % 2 == 0:
            nodes = nodes + draws.field_elements(scheme.hash_length)
        return TreeLayer(start - start % 2, nodes)

    layers = [padded(b"".join(roots), first_tree)]
    for level in range(scheme.log_lifetime // 2 + 1, scheme.log_lifetime + 1):
        below = layers[-1]
        parents = _parents(scheme, parameter, level, below.start_index // 2, below.nodes)
        layers.append(padded(parents, below.start_index // 2))
    return SubTree(scheme.log_lifetime, scheme.log_lifetime // 2, tuple(layers))


def _parents(
    scheme: XmssScheme, parameter: bytes, level: int, start: int, children: bytes
) -> bytes:
    pairs = len(children) // (2 * DIGEST_BYTES)
    out = ctypes.create_string_buffer(pairs * DIGEST_BYTES)
    result = library().lean_xmss_tree_layer(
        config_id(scheme), parameter, level, start, children, pairs, out
    )
    _check_result(result, "tree_layer")
    return out.raw


def _check_result(result: int, call: str) -> None:
    if result != 0:
        raise RuntimeError(f"lean_xmss_{call} refused its arguments (code {result})")


def _outside(secret_key: XmssSecretKey, slot: int) -> str:
    interval = secret_key.activation_interval
    return (
        f"slot {slot} is outside the key's activation interval [{interval.start}, {interval.stop})"
    )


# ---------------------------------------------------------------- SSZ codec


def _encode_subtree(tree: SubTree) -> bytes:
    encoded_layers = [
        _U64.pack(layer.start_index) + _U32.pack(12) + layer.nodes for layer in tree.layers
    ]
    offsets = []
    at = 4 * len(encoded_layers)
    for encoded in encoded_layers:
        offsets.append(_U32.pack(at))
        at += len(encoded)
    fixed = (_U64.pack(tree.depth), _U64.pack(tree.lowest_layer), _U32.pack(20))
    return b"".join((*fixed, *offsets, *encoded_layers))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def take(self, length: int) -> bytes:
        chunk = self._data[self._at : self._at + length]
        self._at += length
        return chunk

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])


def _check_elements(data: bytes, what: str) -> None:
    for (word,) in _U32.iter_unpack(data):
        if word >= FIELD_MODULUS:
            raise KeyDecodeError(f"{what} holds a word that is not a field element")


def _decode_subtree(data: bytes, what: str) -> SubTree:
    if len(data) < 20:
        raise KeyDecodeError(f"{what} is shorter than its fixed part")
    reader = _Reader(data)
    depth = reader.u64()
    lowest_layer = reader.u64()
    if reader.u32() != 20:
        raise KeyDecodeError(f"{what}: its layers do not follow its fixed part")
    body = data[20:]
    if not body:
        raise KeyDecodeError(f"{what} has no layers")
    first_offset = _U32.unpack_from(body, 0)[0]
    if first_offset % 4 or not 4 <= first_offset <= len(body):
        raise KeyDecodeError(f"{what}: the first layer's offset is not a list's")
    offsets = [_U32.unpack_from(body, at)[0] for at in range(0, first_offset, 4)]
    offsets.append(len(body))
    layers = []
    for start, end in itertools.pairwise(offsets):
        if not start <= end or end - start < 12:
            raise KeyDecodeError(f"{what}: a layer's offsets are out of order")
        layer = body[start:end]
        start_index = int(_U64.unpack_from(layer, 0)[0])
        nodes = layer[12:]
        if _U32.unpack_from(layer, 8)[0] != 12 or len(nodes) % DIGEST_BYTES:
            raise KeyDecodeError(f"{what}: a layer's nodes are not whole digests")
        _check_elements(nodes, what)
        layers.append(TreeLayer(start_index, nodes))
    return SubTree(depth, lowest_layer, tuple(layers))


def _check_shape(key: XmssSecretKey) -> None:
    """The trees have the scheme's depth and layer counts, so that signing can open a
    path through them without going out of bounds."""
    scheme = key.scheme
    depth = scheme.log_lifetime
    half = depth // 2
    width = _leaves_per_bottom_tree(scheme)
    shapes = (
        ("the top tree", key.top_tree, half, None),
        ("the left bottom tree", key.left_bottom_tree, 0, key.left_bottom_tree_index),
        ("the right bottom tree", key.right_bottom_tree, 0, key.left_bottom_tree_index + 1),
    )
    for what, tree, lowest, index in shapes:
        if tree.depth != depth or tree.lowest_layer != lowest or len(tree.layers) != half + 1:
            raise KeyDecodeError(f"{what} is not a {scheme.name} scheme's tree of its kind")
        if index is not None and (
            tree.layers[0].start_index != index * width or tree.layers[0].count != width
        ):
            raise KeyDecodeError(f"{what} does not cover bottom tree {index}")
    interval = key.activation_interval
    if (
        interval.start % width
        or interval.stop > 1 << depth
        or not interval.start <= key.prepared_interval.start
        or key.prepared_interval.stop > interval.stop
    ):
        raise KeyDecodeError("the key's intervals are not whole bottom trees inside its lifetime")
    top_leaves = key.top_tree.layers[0]
    if not (
        top_leaves.start_index <= interval.start // width
        and interval.stop // width <= top_leaves.start_index + top_leaves.count
    ):
        raise KeyDecodeError("the top tree does not cover the key's activation interval")
