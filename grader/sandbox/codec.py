"""Plain-data exchange between the sandbox and the judge.

A value is a nest of dicts (string keys), lists, tuples, exact ``np.ndarray`` (numeric or
bool dtype), NumPy scalars, and Python ``None``/``bool``/``int``/``float``/``str``. Arrays go
to ``.npy`` files written and read with ``allow_pickle=False``; the structure goes to JSON.
Anything else is recorded as :class:`Rejected` with its type name, never pickled, so the
judge sees that a student returned, say, a masked array, without ever holding one.

This module runs inside the sandbox too: it imports nothing but the standard library and numpy.
"""
import json
import os

import numpy as np

STRUCTURE_FILE = "structure.json"
MAX_DEPTH = 20


class Rejected:
    """Stands in for a value the codec refused to carry (its exact type is kept)."""

    def __init__(self, type_name, reason=""):
        self.type_name = type_name
        self.reason = reason

    def __repr__(self):
        return f"Rejected({self.type_name!r})"


class CodecError(ValueError):
    """The data on disk is not a well-formed encoding (tampered with, truncated, too big)."""


def _type_name(value):
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def save(value, directory):
    """Write ``value`` under ``directory`` (created). Never raises on odd values."""
    os.makedirs(directory, exist_ok=True)
    arrays = []

    def encode(item, depth):
        if depth > MAX_DEPTH:
            return {"__rejected__": "nesting", "reason": "nested too deeply"}
        kind = type(item)
        if item is None or kind is bool or kind is str:
            return item
        if kind is int:
            return {"__int__": str(item)}
        if kind is float:
            return {"__float__": float.hex(item)}
        if kind is np.ndarray:
            if item.dtype.kind not in "biuf" or item.dtype.hasobject:
                return {"__rejected__": _type_name(item), "reason": f"dtype {item.dtype}"}
            name = f"a{len(arrays)}.npy"
            np.save(os.path.join(directory, name), item, allow_pickle=False)
            arrays.append(name)
            return {"__ndarray__": name}
        if isinstance(item, np.generic) and kind.__module__ == "numpy" and item.dtype.kind in "biuf":
            return {"__npscalar__": item.dtype.str, "value": repr(item.item())}
        if kind is list or kind is tuple:
            return {"__list__" if kind is list else "__tuple__": [encode(x, depth + 1) for x in item]}
        if kind is dict and all(type(k) is str for k in item):
            return {"__dict__": {k: encode(v, depth + 1) for k, v in item.items()}}
        return {"__rejected__": _type_name(item)}

    structure = encode(value, 0)
    with open(os.path.join(directory, STRUCTURE_FILE), "w", encoding="utf-8") as handle:
        json.dump(structure, handle)


def load(directory, max_bytes=256 * 2**20):
    """Read what :func:`save` wrote; raises :class:`CodecError` on anything malformed."""
    total = 0
    for entry in os.scandir(directory):
        if not entry.is_file(follow_symlinks=False):
            raise CodecError(f"unexpected entry {entry.name!r} in the result folder")
        total += entry.stat(follow_symlinks=False).st_size
    if total > max_bytes:
        raise CodecError(f"result is {total / 2**20:.0f} MiB, over the {max_bytes / 2**20:.0f} MiB limit")
    try:
        with open(os.path.join(directory, STRUCTURE_FILE), encoding="utf-8") as handle:
            structure = json.load(handle)
    except (OSError, ValueError) as error:
        raise CodecError(f"unreadable result structure: {error}") from None

    def decode(node, depth):
        if depth > MAX_DEPTH:
            raise CodecError("result nested too deeply")
        if node is None or type(node) in (bool, str):
            return node
        if type(node) is not dict or len(node) not in (1, 2):
            raise CodecError(f"malformed node {str(node)[:80]!r}")
        tag = next(iter(node))
        payload = node[tag]
        if tag == "__int__":
            return int(payload)
        if tag == "__float__":
            return float.fromhex(payload)
        if tag == "__ndarray__":
            if type(payload) is not str or os.path.basename(payload) != payload or not payload.endswith(".npy"):
                raise CodecError(f"bad array file name {payload!r}")
            try:
                return np.load(os.path.join(directory, payload), allow_pickle=False)
            except (OSError, ValueError) as error:
                raise CodecError(f"unreadable array {payload}: {error}") from None
        if tag == "__npscalar__":
            dtype = np.dtype(payload)
            if dtype.kind not in "biuf":
                raise CodecError(f"bad scalar dtype {payload!r}")
            return dtype.type(_literal(node.get("value")))
        if tag == "__list__":
            return [decode(x, depth + 1) for x in payload]
        if tag == "__tuple__":
            return tuple(decode(x, depth + 1) for x in payload)
        if tag == "__dict__":
            if type(payload) is not dict:
                raise CodecError("malformed dict node")
            return {str(k): decode(v, depth + 1) for k, v in payload.items()}
        if tag == "__rejected__":
            return Rejected(str(payload)[:200], str(node.get("reason", ""))[:200])
        raise CodecError(f"unknown tag {tag!r}")

    return decode(structure, 0)


def _literal(text):
    if type(text) is not str or len(text) > 64:
        raise CodecError("bad scalar literal")
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        return float(text)
