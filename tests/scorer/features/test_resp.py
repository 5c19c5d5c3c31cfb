"""The compiled reader of Redis answers (scorer.features.resp) against what it replaces:
hiredis's replies and Python's ``float`` / ``int``, bit for bit; and the store reading through
it and through hiredis alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from scorer.errors import FeatureDataError
from scorer.features import open_store, resp
from scorer.features import redis_store as rs
from scorer.features.loader import load
from scorer.features.redis_store import RedisStore
from scorer.features.resp import (
    DONE,
    ERROR_REPLY,
    MORE,
    STRTOD,
    UNEXPECTED,
    parse_numbers,
    scan_reference,
    scan_replies,
)
from tests.services import redis_db

pytestmark = pytest.mark.skipif(not STRTOD, reason="no C library strtod on this platform")


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    resp.warm()


def _bulk(b: bytes | None, resp3: bool = False) -> bytes:
    if b is None:
        return b"_\r\n" if resp3 else b"$-1\r\n"
    return b"$%d\r\n%s\r\n" % (len(b), b)


def _hash_reply(fields: list[tuple[bytes, bytes]], resp3: bool) -> bytes:
    head = b"%%%d\r\n" % len(fields) if resp3 else b"*%d\r\n" % (2 * len(fields))
    return head + b"".join(_bulk(f) + _bulk(v) for f, v in fields)


def _scan(data: bytes, n: int, whole: bool, names: list[bytes],
          chunks: list[int] | None = None) -> tuple[int, np.ndarray, np.ndarray]:
    """Feed ``data`` in pieces (ends at ``chunks``) as recv would; the last status."""
    buf = np.zeros(len(data) + 8, dtype=np.uint8)
    blob = np.frombuffer(b"".join(names), dtype=np.uint8).copy()
    off = np.cumsum([0, *map(len, names)], dtype=np.int64)
    spans = np.empty((n, len(names), 2), dtype=np.int64)
    state = np.zeros(3, dtype=np.int64)
    st = MORE
    for end in [*(chunks or []), len(data)]:
        buf[:end] = np.frombuffer(data[:end], dtype=np.uint8)
        st = scan_replies(buf, end, state, whole, blob, off, spans)
        if st != MORE:
            break
    return st, spans, buf


def _values(spans: np.ndarray, buf: np.ndarray) -> list[list[bytes | None]]:
    return [[None if a < 0 else bytes(buf[a:a + ln]) for a, ln in row]
            for row in spans.tolist()]


def _random_rows(rng: np.random.Generator, n: int, names: list[bytes],
                 ) -> list[list[tuple[bytes, bytes]]]:
    rows = []
    for _ in range(n):
        fields = [(nm, repr(float(rng.normal() * 10.0 ** rng.integers(-5, 5))).encode())
                  for nm in names if rng.random() > 0.2]
        fields.append((b"other", b"not asked for"))
        order = rng.permutation(len(fields))  # not the order asked for
        rows.append([fields[i] for i in order] if rng.random() < 0.5 else fields)
    return rows


@pytest.mark.parametrize("resp3", [False, True])
def test_hgetall_answers_give_the_values_hiredis_gives(resp3: bool) -> None:
    rng = np.random.default_rng(0)
    names = [b"x0", b"x1", b"a_longer_name", b"_ts"]
    rows = _random_rows(rng, 40, names)
    data = b"".join(_hash_reply(r, resp3) for r in rows) + b"*0\r\n"  # an unknown entity
    st, spans, buf = _scan(data, 41, True, names)
    assert st == DONE
    assert _values(spans, buf) == scan_reference(data, 41, True, names)


@pytest.mark.parametrize("resp3", [False, True])
def test_hmget_answers_with_nulls(resp3: bool) -> None:
    names = [b"x0", b"x1", b"_ts"]
    replies = [[b"1.5", None, b"17"], [None, None, None], [b"", b"-0", b"3"]]
    data = b"".join(b"*3\r\n" + b"".join(_bulk(v, resp3) for v in r) for r in replies)
    st, spans, buf = _scan(data, 3, False, names)
    assert st == DONE
    assert _values(spans, buf) == replies == scan_reference(data, 3, False, names)


def test_answers_cut_anywhere_are_read_once_the_rest_comes() -> None:
    rng = np.random.default_rng(1)
    names = [b"x0", b"x1", b"_ts"]
    data = b"".join(_hash_reply(r, False) for r in _random_rows(rng, 3, names))
    want = scan_reference(data, 3, True, names)
    for cut in range(1, len(data)):  # each byte boundary: MORE, then the same values
        st, spans, buf = _scan(data, 3, True, names, chunks=[cut])
        assert st == DONE and _values(spans, buf) == want, cut
    st, _, _ = _scan(data[:-1], 3, True, names)
    assert st == MORE


@pytest.mark.parametrize(("data", "status"), [
    (b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", ERROR_REPLY),
    (b":12\r\n", UNEXPECTED),  # an integer reply
    (b"*3\r\n$2\r\nx0\r\n$1\r\n1\r\n$1\r\n", UNEXPECTED),  # an odd number of elements
    (b"*2\r\n$2\r\nx0\r\n$9\r\n1\r\n", MORE),  # a length beyond what came: wait
    (b"*2\r\n$2\r\nx0\r\n$1\r\n12\r\n", UNEXPECTED),  # a length that does not end there
    (b"*2\r\n$x\r\nx0\r\n", UNEXPECTED),
    (b"*2\r\n+x0\r\n$1\r\n1\r\n", UNEXPECTED),  # a simple string
])
def test_what_is_not_an_answer_to_the_lookup(data: bytes, status: int) -> None:
    st, _, _ = _scan(data, 1, True, [b"x0", b"_ts"])
    assert st == status


def _texts(rng: np.random.Generator) -> list[bytes]:
    bits = rng.integers(0, 2 ** 63, 4000, dtype=np.int64).view(np.float64)
    doubles = [v for v in bits if np.isfinite(v)]
    doubles += [*rng.normal(size=2000), 0.0, -0.0, 5e-324, 2.2250738585072014e-308,
                1.7976931348623157e308, 1e22, 1e23, 0.1]
    out = [repr(float(v)).encode() for v in doubles]
    for _ in range(3000):  # long digit strings, any exponent: strtod's part
        digits = "".join(map(str, rng.integers(0, 10, rng.integers(1, 30))))
        dot = rng.integers(0, len(digits) + 1)
        text = digits[:dot] + "." + digits[dot:] if rng.random() < 0.7 else digits
        if rng.random() < 0.6:
            text += f"e{rng.integers(-340, 320)}"
        out.append((("-" if rng.random() < 0.5 else "") + text).encode())
    out += [b"1.", b".5", b"-.5", b"1E+05", b"00012", b"0.000", b"-0", b"1e99999", b"1e-99999",
            b"123456789012345678901234567890", b"9007199254740993"]
    return out


def _parse(texts: list[bytes | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """parse_numbers of ``texts`` as one entity's features (a timestamp of 1 after them)."""
    data = b"".join(_bulk(t) for t in [*texts, b"1"])
    buf = np.frombuffer(data + b"\r\n", dtype=np.uint8).copy()
    spans = np.full((1, len(texts) + 1, 2), -1, dtype=np.int64)
    i = 0
    for f, t in enumerate([*texts, b"1"]):
        if t is None:
            i += 5
            continue
        start = data.index(b"\r\n", i) + 2
        spans[0, f] = (start, len(t))
        i = start + len(t) + 2
    k = len(texts)
    block, ts = np.empty((k, 1)), np.empty(1, dtype=np.int64)
    found, slow = np.empty(1, dtype=bool), np.empty((1, k + 1), dtype=bool)
    null = np.empty((k, 1), dtype=bool)
    parse_numbers(buf, spans, block, null, ts, found, slow, STRTOD,
                  np.zeros(1, dtype=np.int64))
    fast = ~slow[0, :k]
    assert null[fast, 0].tolist() == np.isnan(block[fast, 0]).tolist()
    return block[:, 0], slow[0], ts, found


def test_numbers_are_python_floats_bit_for_bit() -> None:
    texts = _texts(np.random.default_rng(2))
    values, slow, ts, found = _parse(texts)
    assert not slow[:-1].any()  # every plain decimal text converted in compiled code
    want = np.array([float(t) for t in texts])
    assert values.view(np.int64).tolist() == want.view(np.int64).tolist()
    assert ts.tolist() == [1] and found.tolist() == [True]


@pytest.mark.parametrize("text", [b"inf", b"-inf", b"nan", b"+1", b" 7", b"7 ", b"1_000",
                                  b"1e", b"e5", b".", b"-", b"", b"0x10", b"1.5.2", b"1e+",
                                  b"seven", b"\xff"])
def test_other_texts_are_left_to_python(text: bytes) -> None:
    values, slow, _, _ = _parse([b"2.5", text, None])
    assert slow.tolist() == [False, True, False, False]
    assert values[0] == 2.5 and np.isnan(values[1]) and np.isnan(values[2])


@pytest.mark.parametrize(("text", "fast"), [(b"1767225600000000", True), (b"-5", True),
                                            (b"123456789012345678", True),
                                            (b"1234567890123456789", False), (b"+5", False),
                                            (b"1.5", False), (b"", False)])
def test_timestamps(text: bytes, fast: bool) -> None:
    data = _bulk(text)
    buf = np.frombuffer(data + b"\r\n", dtype=np.uint8).copy()
    spans = np.array([[[data.index(b"\r\n") + 2, len(text)]]], dtype=np.int64)
    ts, found, slow = (np.empty(1, dtype=np.int64), np.empty(1, dtype=bool),
                       np.empty((1, 1), dtype=bool))
    parse_numbers(buf, spans, np.empty((0, 1)), np.empty((0, 1), dtype=bool), ts, found, slow,
                  STRTOD, np.zeros(1, dtype=np.int64))
    assert found[0] and slow[0, 0] == (not fast)
    if fast:
        assert ts[0] == int(text)


# --- the store reading through it (rstore, raw, view_name: conftest) ---------------------------
def _read_both(store: RedisStore, monkeypatch: pytest.MonkeyPatch, meta, keys, features):
    """The same read through the compiled reader, then through hiredis."""
    compiled = store.read(meta, keys, features)
    with monkeypatch.context() as m:
        m.setattr(rs, "resp_ready", lambda: False)
        hiredis = store.read(meta, keys, features)
    return compiled, hiredis


def _same_rows(a, b, features) -> None:
    assert a.found.tolist() == b.found.tolist() and a.ts_us.tolist() == b.ts_us.tolist()
    for f in features:
        assert a.columns[f].view(np.int64).tolist() == b.columns[f].view(np.int64).tolist()
        assert a.null[f].tolist() == b.null[f].tolist()
    assert (a.matrix is None) == (b.matrix is None)
    if a.matrix is not None:
        assert a.matrix.view(np.int64).tolist() == b.matrix.view(np.int64).tolist()


@pytest.mark.parametrize("ids", [1, 100, 3000])  # 3000: an answer beyond the first buffer
def test_the_store_reads_the_same_rows_both_ways(rstore: RedisStore, view_name: str,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 ids: int) -> None:
    rng = np.random.default_rng(3)
    n, k = 3000, 30
    x = rng.normal(size=(n, k)) * 10.0 ** rng.integers(-8, 8, size=(n, k))
    x[rng.random((n, k)) < 0.05] = np.nan  # nulls: no field
    df = pd.DataFrame({"id": np.arange(n), **{f"x{j}": x[:, j] for j in range(k)}})
    df["flag"] = rng.random(n) < 0.5
    df["count"] = rng.integers(-10 ** 15, 10 ** 15, n)
    df.to_parquet(tmp_path / "v.parquet")
    load(rstore, tmp_path / "v.parquet", view=view_name, entity="id")
    meta = rstore.view(view_name)
    keys = [str(i) for i in rng.integers(0, n + 50, ids)]  # some unknown
    every = list(meta.features)
    some = every[:5]  # HMGET
    for features in (every, some):
        compiled, hiredis = _read_both(rstore, monkeypatch, meta, keys, features)
        _same_rows(compiled, hiredis, features)
    assert len(rstore._local.buf) >= (1 << 16) * (2 if ids == 3000 else 1)


def test_values_python_reads_and_values_nobody_reads(rstore: RedisStore, raw: redis.Redis,
                                                     view_name: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    df = pd.DataFrame({"id": [0, 1], "x0": [1.5, 2.5], "x1": [0.25, 0.5]})
    df.to_parquet(tmp_path / "v.parquet")
    load(rstore, tmp_path / "v.parquet", view=view_name, entity="id")
    meta = rstore.view(view_name)
    raw.hset(f"ts:f:{view_name}:0", mapping={"x0": b"inf", "x1": b"nan"})
    compiled, hiredis = _read_both(rstore, monkeypatch, meta, ["0", "1"], ["x0", "x1"])
    _same_rows(compiled, hiredis, ["x0", "x1"])
    assert compiled.columns["x0"][0] == np.inf and compiled.null["x1"].tolist() == [True, False]
    raw.hset(f"ts:f:{view_name}:1", "x1", b"1_000")
    with pytest.raises(FeatureDataError, match=r"entity '1' holds x1 = b'1_000'"):
        rstore.read(meta, ["0", "1"], ["x0", "x1"])
    raw.hset(f"ts:f:{view_name}:1", "x1", b"0.5")
    raw.hset(f"ts:f:{view_name}:1", "_ts", b"+99999999999999999999")
    with pytest.raises(FeatureDataError, match=r"entity '1' holds _ts"):
        rstore.read(meta, ["0", "1"], ["x0", "x1"])
    raw.delete(f"ts:f:{view_name}:1")
    raw.set(f"ts:f:{view_name}:1", "not a hash")
    for slow in (False, True):  # the compiled reader, then hiredis: the same words
        with monkeypatch.context() as m, pytest.raises(
                FeatureDataError, match=rf"feature view '{view_name}': entity '1' "
                                        rf"\(key ts:f:{view_name}:1\) cannot be read as a hash"):
            if slow:
                m.setattr(rs, "resp_ready", lambda: False)
            rstore.read(meta, ["0", "1"], ["x0", "x1"])
    raw.delete(f"ts:f:{view_name}:1")
    assert rstore.read(meta, ["0", "1"], ["x0"]).found.tolist() == [True, False]


def test_an_answer_beyond_the_bound_is_refused(rstore: RedisStore, view_name: str,
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    df = pd.DataFrame({"id": np.arange(3000), "x0": np.linspace(0, 1, 3000)})
    df.to_parquet(tmp_path / "v.parquet")
    load(rstore, tmp_path / "v.parquet", view=view_name, entity="id")
    meta = rstore.view(view_name)
    monkeypatch.setattr(rs, "_MAX_ANSWER", 1 << 16)
    keys = [str(i) for i in range(3000)]
    with pytest.raises(FeatureDataError, match="larger than 65,536 bytes"):
        rstore.read(meta, keys, ["x0"])
    assert rstore.read(meta, keys[:10], ["x0"]).found.all()  # the next read is served


_FUZZ = r"""
import sys
import numpy as np
from scorer.features.resp import (DONE, STRTOD, parse_numbers, scan_reference,
                                  scan_replies)
rng = np.random.default_rng(int(sys.argv[1]))
names = [b"x0", b"x1", b"_ts"]
blob = np.frombuffer(b"".join(names), dtype=np.uint8).copy()
off = np.cumsum([0, *map(len, names)], dtype=np.int64)
values = [b"1.5", b"-0", b"1e400", b"nan", b"9" * 25, b"7", b"", b"x", b"1_0", b"123456789"]


def bulk(b):
    return b"$-1\r\n" if b is None else b"$%d\r\n%s\r\n" % (len(b), b)


def reply(whole):
    if rng.random() < 0.1:
        return b"*0\r\n" if rng.random() < 0.5 else b"_\r\n"
    if whole:
        fields = [(nm, values[rng.integers(len(values))]) for nm in names + [b"other"]
                  if rng.random() < 0.8]
        head = b"*%d\r\n" % (2 * len(fields)) if rng.random() < 0.7 else b"%%%d\r\n" % len(fields)
        return head + b"".join(bulk(f) + bulk(v) for f, v in fields)
    vals = [None if rng.random() < 0.2 else values[rng.integers(len(values))] for _ in names]
    return b"*3\r\n" + b"".join(bulk(v) for v in vals)


done = 0
for case in range(4000):
    n = int(rng.integers(1, 4))
    whole = bool(rng.random() < 0.7)
    data = bytearray(b"".join(reply(whole) for _ in range(n)))
    for _ in range(int(rng.integers(0, 3))):  # damage: cut, flip, insert
        at = int(rng.integers(0, len(data) + 1))
        op = rng.integers(3)
        if op == 0:
            del data[at:]
        elif op == 1 and at < len(data):
            data[at] ^= 1 << int(rng.integers(8))
        else:
            data[at:at] = bytes([int(rng.integers(256))])
    data = bytes(data)
    buf = np.frombuffer(data, dtype=np.uint8).copy()
    spans = np.empty((n, 3, 2), dtype=np.int64)
    state = np.zeros(3, dtype=np.int64)
    st = scan_replies(buf, len(buf), state, whole, blob, off, spans)
    if st != DONE or state[1] != len(buf):
        continue
    done += 1
    got = [[None if a < 0 else bytes(buf[a:a + ln]) for a, ln in row] for row in spans.tolist()]
    want = scan_reference(data, n, whole, names)
    assert got == want, (data, got, want)
    block, null = np.empty((2, n)), np.empty((2, n), dtype=bool)
    ts, found, slow = (np.empty(n, dtype=np.int64), np.empty(n, dtype=bool),
                       np.empty((n, 3), dtype=bool))
    parse_numbers(buf, spans, block, null, ts, found, slow, STRTOD, np.zeros(1, np.int64))
print("DONE", done)
"""


def test_random_bytes_never_read_outside_the_answer(tmp_path: Path) -> None:
    """Random RESP-like streams through both kernels compiled with bounds checks (a read
    outside an array raises there instead of reading memory): no error, and what the scan
    reads as complete answers is what hiredis reads."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", _FUZZ, "7"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split()[-1]) > 1000  # complete answers were among the cases


# --- what the review found: answers redis-py reads its own way ------------------------------
class _FakeRedis:
    """A server on a free port that answers every command with ``+OK`` except lookups
    (``HGETALL`` / ``HMGET``), which get the scripted answers in turn, each sent in the
    pieces given (a pause between them)."""

    def __init__(self, answers: list[list[bytes]]) -> None:
        import socket
        import threading

        self.answers = answers
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import time

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            data = b""
            with conn:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    while data.startswith(b"*") and b"\r\n" in data:
                        cmd, data = self._command(data)
                        if cmd is None:
                            break
                        if cmd[0].upper() in (b"HGETALL", b"HMGET") and self.answers:
                            for piece in self.answers.pop(0):
                                conn.sendall(piece)
                                time.sleep(0.05)
                        else:
                            conn.sendall(b"+OK\r\n")

    @staticmethod
    def _command(data: bytes) -> tuple[list[bytes] | None, bytes]:
        head, rest = data.split(b"\r\n", 1)
        args = []
        for _ in range(int(head[1:])):
            if b"\r\n" not in rest:
                return None, data
            ln, rest2 = rest.split(b"\r\n", 1)
            size = int(ln[1:])
            if len(rest2) < size + 2:
                return None, data
            args.append(rest2[:size])
            rest = rest2[size + 2:]
        return args, rest

    def close(self) -> None:
        self.sock.close()


_META = None


def _fake_read(answers: list[list[bytes]], reader: str, monkeypatch: pytest.MonkeyPatch):
    from scorer.features.store import ViewMeta

    fake = _FakeRedis(answers)
    if reader == "hiredis":
        monkeypatch.setattr(rs, "resp_ready", lambda: False)
    store = open_store(f"redis://127.0.0.1:{fake.port}/3?timeout=2")
    meta = ViewMeta("v", "id", ("x0",), {"x0": "double"}, None)
    try:
        return store.read(meta, ["1"], ["x0"])  # type: ignore[attr-defined]
    finally:
        store.close()
        fake.close()


@pytest.mark.parametrize("reader", ["compiled", "hiredis"])
def test_error_replies_are_the_errors_redis_py_raises(reader: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from scorer.errors import UnavailableError

    # a Redis loading its data after a restart: unreachable for now, not bad data
    loading = b"-LOADING Redis is loading the dataset in memory\r\n"
    with pytest.raises(UnavailableError, match="BusyLoadingError"):
        _fake_read([[loading], [loading]], reader, monkeypatch)
    # an error line that comes in two pieces is read whole
    with pytest.raises(FeatureDataError, match=r"\(WRONGTYPE Operation against a key "
                                               r"holding the wrong kind of value\)"):
        _fake_read([[b"-WRONGTYPE Operation ", b"against a key holding the wrong kind of "
                     b"value\r\n"]], reader, monkeypatch)


@pytest.mark.parametrize("reader", ["compiled", "hiredis"])
def test_an_answer_in_pieces(reader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    answer = b"*4\r\n$2\r\nx0\r\n$4\r\n2.25\r\n$3\r\n_ts\r\n$2\r\n17\r\n"
    rows = _fake_read([[answer[:7], answer[7:30], answer[30:]]], reader, monkeypatch)
    assert rows.columns["x0"].tolist() == [2.25] and rows.ts_us.tolist() == [17]


def test_a_view_loaded_again_with_other_types_reads_them(rstore: RedisStore, view_name: str,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pd.DataFrame({"id": [1], "z": [2139.0]}).to_parquet(tmp_path / "a.parquet")
    load(rstore, tmp_path / "a.parquet", view=view_name, entity="id")
    assert rstore.read(rstore.view(view_name), ["1"], ["z"]).columns["z"].tolist() == [2139.0]
    rstore.delete_view(view_name)
    pd.DataFrame({"id": [1], "z": ["02139"]}).to_parquet(tmp_path / "b.parquet")
    load(rstore, tmp_path / "b.parquet", view=view_name, entity="id")
    rows = rstore.read(rstore.view(view_name), ["1"], ["z"])
    assert rows.columns["z"].tolist() == ["02139"] and rows.matrix is None


def test_a_feature_named_like_the_timestamp_reads_as_through_hiredis(
        rstore: RedisStore, raw: redis.Redis, view_name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from scorer.features.store import ViewMeta

    meta = ViewMeta(view_name, "id", ("a", "_ts"), {"a": "double", "_ts": "double"}, None)
    raw.hset(f"ts:f:{view_name}:1", mapping={"a": b"1.5", "_ts": b"17"})  # (rstore deletes it)
    compiled, hiredis = _read_both(rstore, monkeypatch, meta, ["1"], ["a", "_ts"])
    _same_rows(compiled, hiredis, ["a", "_ts"])
    assert compiled.found.tolist() == [True] and compiled.ts_us.tolist() == [17]


def test_a_large_answers_buffer_is_not_kept(rstore: RedisStore, view_name: str,
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pd.DataFrame({"id": np.arange(3000), "x0": np.linspace(0, 1, 3000)}).to_parquet(
        tmp_path / "v.parquet")
    load(rstore, tmp_path / "v.parquet", view=view_name, entity="id")
    meta = rstore.view(view_name)
    monkeypatch.setattr(rs, "_KEEP_BUFFER", 1 << 16)
    assert rstore.read(meta, [str(i) for i in range(3000)], ["x0"]).found.all()
    assert rstore._local.buf is None  # the next read starts with a small one again
    assert rstore.read(meta, ["1"], ["x0"]).found.all()
    assert len(rstore._local.buf) == 1 << 16


@pytest.mark.parametrize("reader", ["compiled", "hiredis"])
def test_a_busy_redis_is_unavailable_and_what_is_not_an_answer_is_bad_data(
        reader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from scorer.errors import UnavailableError

    busy = b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL\r\n"
    with pytest.raises(UnavailableError, match=r"BUSY|busy running a script"):
        _fake_read([[busy], [busy]], reader, monkeypatch)
    for answer in (b"?garbage\r\n", b"*1\r\n:5\r\n", b"+OK\r\n", b":5\r\n"):
        with pytest.raises(FeatureDataError, match=r"not the hash of an entity|not Redis"):
            _fake_read([[answer]], reader, monkeypatch)


def test_the_urls_options_reach_redis(raw: redis.Redis, view_name: str,
                                      tmp_path: Path) -> None:
    """(``?db=`` was dropped with every option but the store's own ``timeout``.)"""
    db = int(redis_db().rsplit("/", 1)[1])
    s = open_store(f"redis://127.0.0.1:6379?db={db}&timeout=2")
    try:
        pd.DataFrame({"id": [1], "x0": [0.5]}).to_parquet(tmp_path / "v.parquet")
        load(s, tmp_path / "v.parquet", view=view_name, entity="id")
        assert s.timeout == 2.0  # type: ignore[attr-defined]
        assert raw.exists(f"ts:f:{view_name}:1") and raw.exists(f"ts:v:{view_name}")
    finally:
        s.delete_view(view_name)  # type: ignore[attr-defined]
        s.close()


def test_a_view_read_again_is_compared_once(rstore: RedisStore, view_name: str,
                                            tmp_path: Path) -> None:
    pd.DataFrame({"id": [1], "x0": [0.5]}).to_parquet(tmp_path / "v.parquet")
    load(rstore, tmp_path / "v.parquet", view=view_name, entity="id")
    m1, m2 = rstore.view(view_name), rstore.view(view_name)
    assert m1 is not m2
    for m in (m1, m2):
        assert rstore.read(m, ["1"], ["x0"]).columns["x0"].tolist() == [0.5]
    (cmd,) = rstore._hmget.values()
    assert cmd[4] is m2  # the newest metadata object: the next reads compare nothing
