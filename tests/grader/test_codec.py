"""The codec: exact round trips of plain data, and hostile bytes refused as CodecError within bounded memory."""
import json
import os
import struct
import threading
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from grader.sandbox import codec
from grader.sandbox.codec import CodecError, Rejected, decode, encode

DTYPES = sorted(codec._ALLOWED_DTYPES)


def same(a, b):
    """Exactly the same value: types, dtypes (byte order too), shapes and every bit."""
    if type(a) is not type(b):
        return False
    if type(a) is np.ndarray:
        return a.dtype.str == b.dtype.str and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, np.generic):
        return a.dtype.str == b.dtype.str and a.tobytes() == b.tobytes()
    if type(a) is float:
        return struct.pack(">d", a) == struct.pack(">d", b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(map(same, a, b))
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    if type(a) is Rejected:
        return (a.type_name, a.reason) == (b.type_name, b.reason)
    return a == b


def frame(text, arrays=b""):
    """Hand-made bytes in the codec's framing: magic, JSON length, ``text``, ``arrays``."""
    raw = text.encode("ascii") if isinstance(text, str) else text
    return codec.MAGIC + len(raw).to_bytes(4, "little") + raw + arrays


def refused(data, **kwargs):
    """The CodecError message for ``data``; fails if it decodes or raises anything else."""
    with pytest.raises(CodecError) as caught:
        decode(data, **kwargs)
    message = str(caught.value)
    assert "unexpected" not in message, message  # a named check refused it, not the last-resort net
    assert len(message) < 300
    return message


def peak_of(function):
    """(result, peak bytes traced while ``function()`` ran)."""
    tracemalloc.start()
    try:
        result = function()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def nan_with_payload(bits):
    return struct.unpack(">d", struct.pack(">Q", 0x7FF0_0000_0000_0001 | bits))[0]


dtypes = st.sampled_from(DTYPES).map(np.dtype)
numpy_scalars = dtypes.flatmap(hnp.from_dtype)
arrays = dtypes.flatmap(lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)))
leaves = (st.none() | st.booleans() | st.integers(-2**1024 + 1, 2**1024 - 1) | st.floats()
          | st.integers(0, 2**52 - 1).map(nan_with_payload) | st.text() | numpy_scalars | arrays)
values = st.recursive(leaves, lambda children: st.lists(children, max_size=5) | st.lists(children, max_size=5).map(tuple)
                      | st.dictionaries(st.text(max_size=8), children, max_size=5), max_leaves=30)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_every_supported_value_round_trips_exactly(value):
    assert same(decode(encode(value)), value)


def test_round_trip_keeps_order_byte_order_and_writable_arrays():
    value = {"z": 1, "a": (np.arange(6, dtype=">i2").reshape(2, 3), np.zeros((0, 3)), np.float32(1.5)),
             "f": np.asfortranarray(np.arange(6.0).reshape(2, 3))[:, ::2], "b": np.array([True, False]),
             "nan": -float("nan"), "inf": float("-inf"), "neg": -2**1000, "s": "é\u2603\U0001F600\0"}
    back = decode(encode(value))
    assert same(back, {**value, "f": np.ascontiguousarray(value["f"])})
    assert list(back) == list(value)
    assert back["a"][0].flags.writeable and back["a"][0].flags.owndata  # student code may mutate its inputs


class Odd(float):
    pass


@pytest.mark.parametrize("odd, reason", [
    (np.ma.array([1.0]), ""), (np.array([object()], dtype=object), "dtype object"),
    (np.array([1 + 2j]), "dtype complex128"), (np.zeros(2, dtype="i4,f8"), "dtype"), (np.array(["ab"]), "dtype <U2"),
    (np.array(["2020-01-01"], dtype="M8[D]"), "dtype datetime64[D]"), (np.zeros(2, dtype="V8"), "dtype |V8"),
    (np.complex128(1j), "dtype complex128"), (np.str_("x"), "dtype <U1"), (Odd(1.0), ""), (object(), ""),
    ({1: 2}, "not a string"), ({"\udc80": 1}, "not a string"), (lambda: 0, ""), (2**5000, "5001 bits"),
    ("x" * (codec.MAX_STR_CHARS + 1), "characters"), ("lone \ud800", "not valid Unicode"),
    (list(range(codec.MAX_NODES)), "parts"), (np.zeros(10 * 2**20), "MiB"), (np.zeros((0, 10**7)), "MiB"),
])
def test_anything_else_is_carried_as_rejected(odd, reason):
    back = decode(encode({"v": odd, "after": 1}))
    assert type(back["v"]) is Rejected and back["after"] == 1
    assert back["v"].type_name == codec._type_name(odd) and reason in back["v"].reason


def test_np_matrix_is_rejected():
    with pytest.warns(PendingDeprecationWarning):
        matrix = np.matrix([[1.0]])
    assert decode(encode(matrix)).type_name == "numpy.matrix"


def test_deep_and_cyclic_nesting_is_cut_at_max_depth():
    cycle = []
    cycle.append(cycle)
    back = decode(encode(cycle))
    for _ in range(codec.MAX_DEPTH):
        assert type(back) is list
        back = back[0]
    assert type(back) is Rejected and "nested" in back.reason


def test_what_overflows_is_the_innermost_part_that_does_not_fit():
    value = {"status": {"status": "ok"}, "value": [[1.0] * 40_000, [2.0] * 40_000, [3.0] * 40_000]}
    back = decode(encode(value))
    assert back["status"] == {"status": "ok"}
    assert [type(part) for part in back["value"]] == [list, list, Rejected]


def test_encode_stays_within_max_bytes():
    value = [np.zeros(2**17), np.zeros(2**17), np.zeros(2**17)]  # 1 MiB each
    data = encode(value, max_bytes=5 * 2**19)
    assert len(data) <= 5 * 2**19
    back = decode(data, max_bytes=5 * 2**19)
    assert [type(part) for part in back] == [np.ndarray, np.ndarray, Rejected]


def test_encode_falls_back_to_one_rejected_when_structure_after_the_arrays_overflows():
    value = [np.zeros(2**17 - 8), "x" * 60_000]  # the array fits, then the string does not
    data = encode(value, max_bytes=2**20)
    assert len(data) <= 2**20
    back = decode(data, max_bytes=2**20)
    assert type(back) is Rejected and back.type_name == "builtins.list" and "MiB" in back.reason


def test_a_valid_encoding_is_what_the_docstring_says():
    data = encode({"a": [1, 1.0, "x", None, np.float64(1.0), np.arange(2, dtype="<i4")]})
    length = int.from_bytes(data[6:10], "little")
    assert data[:6] == b"BPLC\x00\x01"
    assert json.loads(data[10:10 + length]) == ["D", "a", ["L", "i1", "f3ff0000000000000", "sx", None,
                                                             "n<f8:000000000000f03f", ["A", "<i4", 2]]]
    assert data[10 + length:] == b"\0\0\0\0\1\0\0\0"


# Hostile input, one class per case; each must be CodecError, with a short reason.

VALID = encode({"w": np.arange(12.0).reshape(3, 4), "b": [True, 2, "s"]})


def test_every_truncation_is_refused():
    for cut in range(len(VALID)):
        refused(VALID[:cut])


@given(st.data())
@settings(max_examples=500, deadline=None)
def test_random_damage_is_refused_or_decodes_never_crashes(data):
    damaged = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(damaged) - 1))
        damaged[where] = data.draw(st.integers(0, 255))
    try:
        decode(bytes(damaged))
    except CodecError as error:
        assert "unexpected" not in str(error)


@given(st.binary(max_size=200))
def test_random_json_after_the_header_is_refused_or_decodes(tail):
    try:
        decode(frame(tail))
    except CodecError as error:
        assert "unexpected" not in str(error)


@pytest.mark.parametrize("data, reason", [
    (b"", "bad magic"), (b"\x93NUMPY\x01\x00" + b"{}" * 8, "bad magic"), (b"BPLC\x00\x02" + bytes(8), "version"),
    (codec.MAGIC + (2**32 - 1).to_bytes(4, "little") + b"[]", "over the 8 MiB"),
    (codec.MAGIC + (100).to_bytes(4, "little") + b'"sx"', "truncated"),
    ("not bytes", "expected bytes"),
])
def test_bad_framing_is_refused(data, reason):
    assert reason in refused(data)


@pytest.mark.parametrize("text, arrays, reason", [
    ('["A","<f8",1099511627776]', b"", "larger than any result"),           # header claims 2**40 values
    ('["A","<f8",0,1099511627776,1099511627776]', b"", "larger than any result"),
    ('["A","<f8"' + ",99999999999999999999" * 32 + "]", b"", "larger than any result"),
    ('["A","<f8",NaN]', bytes(8), "NaN"),
    ('["A","<f8",3]', bytes(16), "needs 24 bytes; 16 are left"),            # shape times item size > data
    ('["A","<f8",2]', bytes(24), "8 bytes after the last array"),           # ... < data
    ('["L",["A","<f8",2],["A","<f8",2]]', bytes(16), "needs 16 bytes; 0 are left"),  # no blob shared
    ('["A","|O",1]', bytes(8), "dtype '|O'"), ('["A","|V8",1]', bytes(8), "dtype '|V8'"),
    ('["A","<M8[ns]",1]', bytes(8), "dtype"), ('["A","<U1",1]', bytes(4), "dtype"),
    ('["A","<c16",1]', bytes(16), "dtype"), ('["A","(2,)<f8",1]', bytes(16), "dtype"), ('["A","O",1]', bytes(8), "dtype"),
    ('["A",["<f8"],1]', b"", "malformed array"),
    ('["A","<f8",-1]', b"", "non-negative"), ('["A","<f8",true]', bytes(8), "non-negative"),
    ('["A","<f8"' + ",1" * 33 + "]", bytes(8), "33 dimensions"),
    ('["A","|b1",2]', b"\x01\x02", "neither 0 nor 1"), ('"n|b1:02"', b"", "neither 0 nor 1"),
    ('"n|O:00"', b"", "dtype '|O'"), ('"n<f8:00"', b"", "malformed NumPy scalar"),
    ('"n<f8:00 0000000000000"', b"", "malformed"),
    ('["A","<f8",1' + "0" * 100_000 + "]", b"", "100001 digits"),           # huge int literal
    ('"i' + "f" * 100_000 + '"', b"", "characters"), ('"i' + "f" * 300 + '"', b"", "malformed int"),
    ('"i0x10"', b"", "malformed int"), ('"i1_0"', b"", "malformed int"), ('"i 10"', b"", "malformed int"),
    ('"fnan"', b"", "malformed float"), ('"f7ff8"', b"", "malformed float"),
    ('"f7FF8000000000000"', b"", "malformed float"),
    ("NaN", b"", "JSON number 'NaN'"), ('["L",Infinity]', b"", "Infinity"), ('["L",-Infinity]', b"", "Infinity"),
    ("1.5", b"", "JSON number '1.5'"), ("1e999", b"", "JSON number"), ("1", b"", "neither a tagged string"),
    ('["D",1,null]', b"", "key that is not a string"), ('["D",null,null]', b"", "key that is not a string"),
    ('["D","a","i1","a","i2"]', b"", "duplicate dict key 'a'"), ('["D","a"]', b"", "a key and no value"),
    ('{"a":1}', b"", "JSON object"), ('{"a":1,"a":2}', b"", "JSON object"), ('["L",{}]', b"", "JSON object"),
    ('["X",1]', b"", "unknown tag 'X'"), ('"x1"', b"", "unknown tag 'x'"), ('""', b"", "unknown tag ''"),
    ("[]", b"", "neither"), ("[1]", b"", "neither"), ('["R","a"]', b"", "malformed Rejected"),
    ('"s\\ud800"', b"", "lone surrogate"), ('["D","\\udfff",null]', b"", "lone surrogate"),
    ('["L","s\xe9"]'.encode("latin-1"), b"", "not ASCII"), ('["L" "sx"]', b"", "not JSON"), ('["L",]', b"", "not JSON"),
    ('["L"]]', b"", "unbalanced"), ('["L"', b"", "unbalanced"), ('"sab', b"", "not JSON"), ('"s\\', b"", "not JSON"),
    ('["L"] ["L"]', b"", "not JSON"), ('"s' + "x" * (codec.MAX_STR_CHARS + 1) + '"', b"", "characters"),
])
def test_malformed_structure_is_refused(text, arrays, reason):
    assert reason in refused(frame(text, arrays))


def nest(inner, levels):
    return '["L",' * levels + inner + "]" * levels


def test_nesting_100000_deep_is_refused_before_json_parses_it(monkeypatch):
    with monkeypatch.context() as patched:
        patched.setattr(codec.json, "loads", lambda *a, **k: pytest.fail("json.loads ran on deep nesting"))
        assert "values" in refused(frame("[" * 100_000 + "]" * 100_000))
        assert "values" in refused(frame('["L",' * 100_000 + '"sx"' + "]" * 100_000))
        assert "nested more than 20 deep" in refused(frame("[" * 1000 + "]" * 1000))
        assert "nested more than 20 deep" in refused(frame(nest('["A","<f8",0]', codec.MAX_DEPTH + 1)))
    assert "nested more than 20 deep" in refused(frame(nest("null", codec.MAX_DEPTH + 1)))
    assert decode(frame(nest("null", codec.MAX_DEPTH))) is not None
    inside_strings = '["L","s' + "[" * 60_000 + '"]'  # brackets in a string are no nesting
    assert decode(frame(inside_strings)) == ["[" * 60_000]


def test_too_many_values_are_refused():
    for unit in ['["L"]', '"sa"', "null", '"s,"']:
        data = frame('["L",' + ",".join([unit] * codec.MAX_NODES) + "]")
        assert f"more than {codec.MAX_NODES} values" in refused(data)


def test_many_escaped_quotes_cost_linear_time():
    texts = ['"' + '\\"' * 2_000_000 + "\\", '"' + '\\"' * 2_000_000, ('"\\"",' * 2_000_000)]
    reasons = []

    def run():
        reasons.extend(refused(frame(text)) for text in texts)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)  # quadratic would take hours; linear takes about a second
    assert not worker.is_alive() and len(reasons) == 3


# Memory, measured with tracemalloc (numpy's buffers included): the bound stated in codec's docstring.

def test_memory_a_64_mb_wide_json_is_refused_before_it_is_parsed():
    data = frame(",".join(['["L"]'] * (64_000_000 // 6)))
    message, peak = peak_of(lambda: refused(data))
    assert "over the 8 MiB limit" in message and peak < 2**20


def test_memory_a_json_of_many_tiny_nodes_costs_at_most_one_copy():
    for unit in ['["L"]', '"sa"', "0"]:
        data = frame('["L",' + ",".join([unit] * ((codec.MAX_JSON_BYTES - 10) // (len(unit) + 1))) + "]")
        _, peak = peak_of(lambda: refused(data))
        assert peak < 1.05 * len(data)


# The costliest units: per JSON byte (empty lists, one-key dicts), per value (NumPy scalars), big ints.
@pytest.mark.parametrize("unit, per_value", [('["L"]', 2), ('["D","a",null]', 4), ('"n<f8:000000000000f03f"', 1),
                                             ('"i' + "f" * 256 + '"', 1)])
def test_memory_the_most_values_allowed_stay_within_the_bound(unit, per_value):
    count = min((codec.MAX_NODES - 2) // per_value, (codec.MAX_JSON_BYTES - 16) // (len(unit) + 1))
    data = frame('["L",' + ",".join([unit] * count) + "]")
    value, peak = peak_of(lambda: decode(data))
    assert len(value) == count
    assert peak < bound(data)


def bound(data, array_bytes=0):
    """The peak decode may reach, from codec's docstring."""
    return array_bytes + 5 * (len(data) - codec.HEADER_SIZE - array_bytes) + 100 * codec.MAX_NODES


def test_memory_strings_cost_at_most_five_times_their_json():
    text = '"s\\ud83d\\ude00' + "a" * (codec.MAX_STR_CHARS - 1) + '"'  # one astral character: held as UCS-4
    data = frame('["L",' + ",".join([text] * ((codec.MAX_JSON_BYTES - 16) // (len(text) + 1))) + "]")
    value, peak = peak_of(lambda: decode(data))
    assert len(value[0]) == codec.MAX_STR_CHARS
    assert 4 * len(data) < peak < bound(data)


def test_memory_large_arrays_cost_their_size_once():
    for value in [np.ones(60 * 2**20 // 8), [np.ones(60 * 2**10 // 8)] * 1000]:
        data = encode(value)
        back, peak = peak_of(lambda: decode(data))
        assert same(back, value) and peak < 1.01 * len(data) + 2**20
    array = np.ones(60 * 2**20 // 8)
    _, peak = peak_of(lambda: encode(array))
    assert peak < 1.01 * array.nbytes + 2**20  # encode copies an array once, into its result


def test_memory_the_worst_mix_stays_under_len_plus_50_mib():
    text = '"s\\ud83d\\ude00' + "a" * (codec.MAX_STR_CHARS - 1) + '"'
    strings = ",".join([text] * ((codec.MAX_JSON_BYTES - 64) // (len(text) + 1) - 1))
    count = (codec.MAX_BYTES - codec.MAX_JSON_BYTES - 64) // 8
    data = frame(f'["L",{strings},["A","<f8",{count}]]', bytes(8 * count))
    _, peak = peak_of(lambda: decode(data))
    assert peak < min(bound(data, 8 * count), len(data) + 50 * 2**20)


# save / load: one file, read without following links.

def test_save_and_load_round_trip(tmp_path):
    value = {"a": np.arange(3.0), "b": ("x", None)}
    codec.save(value, tmp_path / "result")
    assert os.listdir(tmp_path / "result") == [codec.RESULT_FILE]
    assert same(codec.load(tmp_path / "result"), value)


def test_load_refuses_links_pipes_and_missing_files(tmp_path):
    codec.save(1, tmp_path / "real")
    for name, make in [("link", lambda p: os.symlink(tmp_path / "real" / codec.RESULT_FILE, p)), ("fifo", os.mkfifo),
                       ("zero", lambda p: os.symlink("/dev/zero", p)), ("missing", lambda p: None)]:
        os.mkdir(tmp_path / name)
        make(tmp_path / name / codec.RESULT_FILE)
        outcome = []
        worker = threading.Thread(target=lambda: outcome.append(pytest.raises(CodecError, codec.load, tmp_path / name)),
                                  daemon=True)
        worker.start()
        worker.join(10)
        assert outcome, f"load blocked on {name}"
        assert "unreadable result" in str(outcome[0].value)
