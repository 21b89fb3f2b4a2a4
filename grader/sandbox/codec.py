"""Plain-data exchange between the sandbox and the judge: one value to one ``bytes`` object and back.

A value is a nest of dicts (string keys), lists, tuples, exact ``np.ndarray`` (bool, int, uint or
float dtype), NumPy scalars, and Python ``None``/``bool``/``int``/``float``/``str``. Anything
else is carried as :class:`Rejected` with its type name, never pickled, so the judge sees that a
student returned, say, a masked array, without ever holding one. This module runs inside the
sandbox too: it imports nothing but the standard library and numpy.

The format (version 1) is one ``bytes`` object::

    b"BPLC\\x00\\x01" | JSON length (4 bytes, little-endian) | JSON (ASCII) | array data

The JSON is one node, written without spaces:

    null, true, false              None, True, False
    "s<text>"                      str
    "i<hex>"                       int, e.g. "i-1f" (at most MAX_INT_HEX_DIGITS digits)
    "f<16 hex digits>"             float: its IEEE 754 bits, big-endian (exact, NaN payloads too)
    "n<dtype>:<hex>"               NumPy scalar: its raw bytes, e.g. "n<f8:000000000000f03f"
    ["L", node, ...]               list
    ["T", node, ...]               tuple
    ["D", "key", node, ...]        dict, keys (plain JSON strings) in order
    ["A", "<dtype>", d0, d1, ...]  ndarray of that dtype and shape; its C-order bytes are the next
                                   d0*d1*...*itemsize bytes of the array data
    ["R", "type name", "reason"]   Rejected

The arrays' bytes follow the JSON in the order their nodes appear and fill the rest exactly.

:func:`decode` treats its input as hostile (the kernel wrote it) and raises :class:`CodecError`,
nothing else, for anything malformed. Every limit is checked before the memory it guards is
spent: the total size; the JSON's size (MAX_JSON_BYTES), nesting (MAX_DEPTH) and number of
values (MAX_NODES), all three by scanning the bytes before ``json.loads`` runs; string lengths;
int digits; each array's dtype (an allow-list: no object, structured, void, datetime or string
dtypes) and its shape times item size against the bytes actually present, before allocating.
Memory: beyond ``data`` itself, decoding holds its arrays (at most ``len(data)`` bytes in all),
the JSON as text, its strings (at most 4 bytes per JSON byte, as UCS-4) and at most ~100 bytes
per JSON value; so its peak stays below ``array bytes + 5 * JSON bytes + 100 * values``, i.e.
below ``len(data) + 50 MiB`` at the default limits whatever the input (measured with
tracemalloc in tests/grader/test_codec.py: 5.0x for a JSON of 8 MiB of strings, 4.9 MiB for
100,000 empty lists, 1.00x for arrays; a 64 MB JSON is refused before a byte of it is parsed).

:func:`encode` keeps to the same limits, so whatever it writes decodes: a part that would break
one is carried as :class:`Rejected` saying why. It copies each array once, into the result.
"""
import itertools
import json
import math
import os
import re
import struct

import numpy as np

MAGIC = b"BPLC\x00\x01"
HEADER_SIZE = len(MAGIC) + 4
MAX_BYTES = 64 * 2**20
MAX_JSON_BYTES = 8 * 2**20
MAX_NODES = 100_000          # JSON values in all: every leaf, container, tag, key and dimension
MAX_DEPTH = 20               # containers nested in containers
MAX_STR_CHARS = 2**16
MAX_INT_HEX_DIGITS = 256     # ints up to 1024 bits
MAX_NDIM = 32
RESULT_FILE = "value.bin"

_ALLOWED_DTYPES = {dtype.str: dtype for dtype in (
    np.dtype(kind).newbyteorder(order)
    for kind in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
                 np.float16, np.float32, np.float64, np.longdouble)
    for order in "<>")}

# A JSON string, or an unterminated one running to the end: it never fails, so the scan never
# retries from a later quote (quadratic on many escaped quotes), and never backtracks (possessive).
_JSON_STRING = re.compile(r'"[^"\\]*+(?:\\.?[^"\\]*+)*+(?:"|\Z)', re.DOTALL)
_BRACKET = re.compile(r"[\[\]]")
_INT_HEX = re.compile(r"-?[0-9a-f]{1,%d}" % MAX_INT_HEX_DIGITS)
_HEX = re.compile(r"[0-9a-f]*")


class Rejected:
    """Stands in for a value the codec refused to carry (its exact type is kept)."""

    def __init__(self, type_name, reason=""):
        self.type_name = type_name
        self.reason = reason

    def __repr__(self):
        return f"Rejected({self.type_name!r})"


class CodecError(ValueError):
    """The bytes are not a well-formed encoding (tampered with, truncated, too big)."""


def _type_name(value):
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _clean(text, limit=200):
    """``text`` cut to ``limit`` characters and made valid Unicode (a lone surrogate is escaped)."""
    text = str(text)[:limit]
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _valid_unicode(text):
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _OverBudget(Exception):
    """A part does not fit in what is left of MAX_NODES or MAX_JSON_BYTES."""


class _Encoder:
    """Builds the JSON tree and the list of array buffers, counting what :func:`decode` will count."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.nodes = 0
        self.text = 0        # an upper bound on the JSON's length
        self.array_bytes = 0
        self.blobs = []

    def charge(self, nodes, text):
        if self.nodes + nodes > MAX_NODES or self.text + text > MAX_JSON_BYTES:
            raise _OverBudget
        self.nodes += nodes
        self.text += text

    def leaf(self, text):
        """A string node ``text``: one JSON value."""
        self.charge(1, len(json.dumps(text)) + 1)
        return text

    def rejected(self, type_name, reason):
        node = ["R", _clean(type_name), _clean(reason)]
        self.charge(4, len(json.dumps(node)) + 1)
        return node

    def node(self, item, depth):
        kind = type(item)
        if item is None or kind is bool:
            self.charge(1, 6)
            return item
        if kind is str:
            if len(item) > MAX_STR_CHARS:
                return self.rejected("builtins.str", f"a string of {len(item)} characters (at most {MAX_STR_CHARS})")
            if not _valid_unicode(item):
                return self.rejected("builtins.str", "a string that is not valid Unicode (a lone surrogate)")
            return self.leaf("s" + item)
        if kind is int:
            if item.bit_length() > 4 * MAX_INT_HEX_DIGITS:
                return self.rejected("builtins.int",
                                     f"an int of {item.bit_length()} bits (at most {4 * MAX_INT_HEX_DIGITS})")
            return self.leaf("i" + format(item, "x"))
        if kind is float:
            return self.leaf("f" + struct.pack(">d", item).hex())
        if kind is Rejected:
            return self.rejected(item.type_name, item.reason)
        if kind is np.ndarray:
            return self.array(item)
        if isinstance(item, np.generic) and kind is item.dtype.type:
            if item.dtype.str not in _ALLOWED_DTYPES:
                return self.rejected(_type_name(item), f"dtype {item.dtype}")
            return self.leaf(f"n{item.dtype.str}:{item.tobytes().hex()}")
        if kind is list or kind is tuple or kind is dict:
            if depth >= MAX_DEPTH:
                return self.rejected(_type_name(item), f"nested more than {MAX_DEPTH} deep")
            return self.container(item, depth)
        return self.rejected(_type_name(item), "")

    def array(self, item):
        dtype = item.dtype
        if dtype.str not in _ALLOWED_DTYPES:
            return self.rejected(_type_name(item), f"dtype {dtype}")
        if item.ndim > MAX_NDIM:
            return self.rejected(_type_name(item), f"{item.ndim} dimensions (at most {MAX_NDIM})")
        room = self.max_bytes - HEADER_SIZE - self.text - self.array_bytes
        extent = math.prod(max(size, 1) for size in item.shape) * dtype.itemsize  # its nbytes, unless it is empty
        if extent > room:
            return self.rejected(_type_name(item), f"{extent / 2**20:.1f} MiB, more than the "
                                                   f"{max(room, 0) / 2**20:.1f} MiB left in a result")
        node = ["A", dtype.str, *item.shape]
        self.charge(3 + item.ndim, len(json.dumps(node)) + 1)
        self.array_bytes += item.nbytes
        self.blobs.append(np.ascontiguousarray(item).reshape(-1).view(np.uint8))
        return node

    def container(self, item, depth):
        saved = self.nodes, self.text, self.array_bytes, len(self.blobs)
        try:
            if type(item) is dict:
                if not all(type(key) is str and len(key) <= MAX_STR_CHARS and _valid_unicode(key) for key in item):
                    return self.rejected(_type_name(item),
                                         "a key that is not a string (or too long, or not valid Unicode)")
                self.charge(2, 7)
                node = ["D"]
                for key, value in item.items():
                    node.append(key)
                    self.charge(1, len(json.dumps(key)) + 1)
                    node.append(self.node(value, depth + 1))
                return node
            self.charge(2, 7)
            return ["L" if type(item) is list else "T", *(self.node(value, depth + 1) for value in item)]
        except _OverBudget:
            self.nodes, self.text, self.array_bytes = saved[:3]
            del self.blobs[saved[3]:]
            return self.rejected(_type_name(item), f"more than the {MAX_NODES} parts or "
                                                   f"{MAX_JSON_BYTES // 2**20} MiB of text a result may have")


def encode(value, *, max_bytes=MAX_BYTES):
    """``value`` as one ``bytes`` object that :func:`decode` (with the same ``max_bytes``) reads back.

    Never raises on odd values: a part the codec cannot carry, or one that would break a limit,
    becomes a :class:`Rejected` naming its type and why.
    """
    encoder = _Encoder(max_bytes)
    tree = encoder.node(value, 0)  # the root always fits: only a container's parts can overflow
    text = json.dumps(tree, separators=(",", ":")).encode("ascii")
    size = HEADER_SIZE + len(text) + encoder.array_bytes
    if size > max_bytes:  # arrays that each fitted, then more structure after them
        reason = f"{size / 2**20:.1f} MiB encoded, over the {max_bytes / 2**20:.1f} MiB a result may have"
        text = json.dumps(["R", _clean(_type_name(value)), reason], separators=(",", ":")).encode("ascii")
        encoder.blobs = []
    return b"".join([MAGIC, len(text).to_bytes(4, "little"), text, *encoder.blobs])


def _reject_json_number(literal):
    raise CodecError(f"a JSON number {literal[:20]!r} (the format writes numbers as strings)")


def _json_int(literal):
    if len(literal) > 20:
        raise CodecError(f"a JSON integer of {len(literal)} digits")
    return int(literal)


def _scan(text):
    """Refuse JSON that would cost json.loads too much, judging from the text alone, without copying it.

    Outside strings (a bracket or comma inside one is no structure), the number of values is at
    most commas + opening brackets + 1 and the nesting depth is the running balance of brackets;
    a valid text has no more strings than values, and at least (quotes - quotes after a
    backslash) / 2 of them. This agrees with json.loads on every prefix json.loads accepts, so it
    bounds what json.loads builds. Its loops run at most ~2 * MAX_NODES times.
    """
    too_many = CodecError(f"more than {MAX_NODES} values")
    if text.count('"') - text.count('\\"') > 2 * MAX_NODES:
        raise too_many
    values, depth, strings, position = 1, 0, 0, 0
    braces = "{" in text
    spans = (match.span() for match in _JSON_STRING.finditer(text))
    for start, end in itertools.chain(spans, [(len(text), len(text))]):
        strings += 1
        if strings > MAX_NODES + 1:
            raise too_many
        if braces and text.find("{", position, start) >= 0:
            raise CodecError("a JSON object (the format has none)")
        opens, closes = text.count("[", position, start), text.count("]", position, start)
        values += text.count(",", position, start) + opens
        if values > MAX_NODES:
            raise too_many
        if closes > depth + opens:
            raise CodecError("unbalanced brackets")
        if opens + closes > 1 or depth + opens > MAX_DEPTH + 1:
            for bracket in _BRACKET.finditer(text, position, start):
                depth += 1 if bracket.group() == "[" else -1
                if depth > MAX_DEPTH + 1:
                    raise CodecError(f"nested more than {MAX_DEPTH} deep")
                if depth < 0:
                    raise CodecError("unbalanced brackets")
        else:
            depth += opens - closes
        position = end
    if depth:
        raise CodecError("unbalanced brackets")


class _Decoder:
    def __init__(self, data, start, max_bytes):
        self.data = data
        self.cursor = start
        self.max_bytes = max_bytes

    def node(self, node, depth):
        if node is None or type(node) is bool:
            return node
        if type(node) is str:
            return self.leaf(node)
        if type(node) is not list or not node or type(node[0]) is not str:
            raise CodecError("a node that is neither a tagged string nor a tagged list")
        tag = node[0]
        if tag in ("L", "T", "D") and depth >= MAX_DEPTH:
            raise CodecError(f"nested more than {MAX_DEPTH} deep")
        if tag == "L":
            return list(self.children(node, depth))
        if tag == "T":
            return tuple(self.children(node, depth))
        if tag == "D":
            if len(node) % 2 != 1:
                raise CodecError("a dict node with a key and no value")
            result = {}
            for index in range(1, len(node), 2):
                key = node[index]
                if type(key) is not str:
                    raise CodecError("a dict key that is not a string")
                self.checked(key)
                if key in result:
                    raise CodecError(f"duplicate dict key {ascii(key[:40])}")
                result[key] = self.node(node[index + 1], depth + 1)
                node[index + 1] = None
            return result
        if tag == "A":
            return self.array(node)
        if tag == "R":
            if len(node) != 3 or type(node[1]) is not str or type(node[2]) is not str:
                raise CodecError("a malformed Rejected node")
            return Rejected(self.checked(node[1])[:200], self.checked(node[2])[:200])
        raise CodecError(f"unknown tag {ascii(tag[:20])}")

    def children(self, node, depth):
        """The decoded items of a list or tuple node, each parsed item dropped once decoded (halves the peak)."""
        for index in range(1, len(node)):
            yield self.node(node[index], depth + 1)
            node[index] = None

    def checked(self, text):
        if len(text) > MAX_STR_CHARS + 1:  # + 1: a leaf's tag
            raise CodecError(f"a string of {len(text)} characters (at most {MAX_STR_CHARS})")
        if not _valid_unicode(text):
            raise CodecError("a string that is not valid Unicode (a lone surrogate)")
        return text

    def leaf(self, node):
        self.checked(node)
        tag, body = node[:1], node[1:]
        if tag == "s":
            return body
        if tag == "i":
            if not _INT_HEX.fullmatch(body):
                raise CodecError(f"a malformed int {ascii(body[:40])}")
            return int(body, 16)
        if tag == "f":
            if len(body) != 16 or not _HEX.fullmatch(body):
                raise CodecError(f"a malformed float {ascii(body[:40])}")
            return struct.unpack(">d", bytes.fromhex(body))[0]
        if tag == "n":
            name, _, digits = body.partition(":")
            dtype = _ALLOWED_DTYPES.get(name)
            if dtype is None:
                raise CodecError(f"a NumPy scalar of dtype {ascii(name[:20])}")
            if len(digits) != 2 * dtype.itemsize or not _HEX.fullmatch(digits):
                raise CodecError(f"a malformed NumPy scalar {ascii(body[:40])}")
            raw = bytes.fromhex(digits)
            if dtype.kind == "b" and raw not in (b"\x00", b"\x01"):
                raise CodecError("a bool scalar whose byte is neither 0 nor 1")
            return np.frombuffer(raw, dtype)[0]
        raise CodecError(f"a string node with unknown tag {ascii(tag)}")

    def array(self, node):
        if len(node) < 2 or type(node[1]) is not str:
            raise CodecError("a malformed array node")
        dtype = _ALLOWED_DTYPES.get(node[1])
        if dtype is None:
            raise CodecError(f"an array of dtype {ascii(node[1][:20])} (not bool, int, uint or float)")
        shape = node[2:]
        if len(shape) > MAX_NDIM:
            raise CodecError(f"an array of {len(shape)} dimensions (at most {MAX_NDIM})")
        if any(type(size) is not int or size < 0 for size in shape):
            raise CodecError("an array shape that is not a list of non-negative integers")
        described = f"an array of shape {str(tuple(shape))[:60]} ({dtype})"
        if math.prod(max(size, 1) for size in shape) * dtype.itemsize > self.max_bytes:
            raise CodecError(f"{described}, larger than any result may be")
        nbytes = math.prod(shape) * dtype.itemsize
        left = len(self.data) - self.cursor
        if nbytes > left:
            raise CodecError(f"{described} needs {nbytes} bytes; {left} are left")
        start, self.cursor = self.cursor, self.cursor + nbytes
        if nbytes == 0:
            return np.empty(shape, dtype)
        if dtype.kind == "b" and np.frombuffer(self.data, np.uint8, nbytes, start).max() > 1:
            raise CodecError("a bool array holding a byte that is neither 0 nor 1")
        return np.frombuffer(self.data, dtype, nbytes // dtype.itemsize, start).reshape(shape).copy()


def decode(data, *, max_bytes=MAX_BYTES):
    """The value :func:`encode` wrote into ``data``; :class:`CodecError` (only) if it is malformed."""
    try:
        return _decode(data, max_bytes)
    except CodecError:
        raise
    except (MemoryError, RecursionError, ValueError, TypeError, OverflowError, IndexError, KeyError) as error:
        raise CodecError(f"malformed encoding (unexpected {type(error).__name__})") from None


def _decode(data, max_bytes):
    if type(data) not in (bytes, bytearray):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise CodecError(f"result is {len(data) / 2**20:.1f} MiB, over the {max_bytes / 2**20:.1f} MiB limit")
    if len(data) < HEADER_SIZE or data[:4] != MAGIC[:4]:
        raise CodecError("not an encoded result (bad magic)")
    if data[:len(MAGIC)] != MAGIC:
        raise CodecError("an encoded result of an unknown version")
    length = int.from_bytes(data[len(MAGIC):HEADER_SIZE], "little")
    if length > min(MAX_JSON_BYTES, max_bytes):
        raise CodecError(f"its structure is {length / 2**20:.1f} MiB, over the {MAX_JSON_BYTES / 2**20:.0f} MiB limit")
    if length > len(data) - HEADER_SIZE:
        raise CodecError(f"truncated: its structure claims {length} bytes, {len(data) - HEADER_SIZE} follow")
    try:
        text = str(memoryview(data)[HEADER_SIZE:HEADER_SIZE + length], "ascii")
    except UnicodeDecodeError:
        raise CodecError("its structure is not ASCII") from None
    _scan(text)
    try:
        tree = json.loads(text, parse_int=_json_int, parse_float=_reject_json_number,
                          parse_constant=_reject_json_number)
    except json.JSONDecodeError as error:
        raise CodecError(f"its structure is not JSON ({error.msg} at byte {error.pos})") from None
    del text
    decoder = _Decoder(data, HEADER_SIZE + length, max_bytes)
    value = decoder.node(tree, 0)
    if decoder.cursor != len(data):
        raise CodecError(f"{len(data) - decoder.cursor} bytes after the last array")
    return value


def save(value, directory):
    """Write ``value`` (encoded) to ``directory/RESULT_FILE``; ``directory`` is created."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, RESULT_FILE), "wb") as handle:
        handle.write(encode(value))


def load(directory, max_bytes=MAX_BYTES):
    """Read what :func:`save` wrote, never through a link; :class:`CodecError` on anything malformed.

    Host side only: the sandbox loads this file on its own, outside the package, and never calls it.
    """
    from .. import safe_io
    try:
        data = safe_io.read_regular(os.path.join(directory, RESULT_FILE), max_bytes)
    except OSError as error:
        raise CodecError(f"unreadable result: {error}") from None
    return decode(data, max_bytes=max_bytes)
