"""The feature store's backends (Redis in a database of this process's own, embedded SQLite)
behave alike: exact values, latest timestamp wins, re-loads change nothing, bad files are
refused before anything is written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scorer.errors import FieldTypeError, InputError, MissingFieldError
from scorer.features import FeatureStore, open_store
from scorer.features.loader import load
from tablescore.cli import main as cli
from tests.services import redis_db


def _frame(n: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "id": np.arange(100, 100 + n, dtype=np.int64),
        "x": rng.normal(size=n),
        "k": rng.integers(-5, 5, n),
        "flag": rng.random(n) > 0.5,
        "s": rng.choice(["a", "ü", ""], n).astype(object),
    })
    # hard doubles: shortest text must give the same bits back
    df.loc[0, "x"] = 0.1
    df.loc[1, "x"] = 1e-300
    df.loc[2, "x"] = np.inf
    df.loc[3, "x"] = 1 / 3
    df.loc[4, "x"] = 2.0 ** 60 + 2 ** 8
    df.loc[5, "x"] = np.nan   # null
    df.loc[6, "s"] = None     # null
    return df


def test_values_come_back_bit_for_bit(store: FeatureStore, view_name: str,
                                      tmp_path: Path) -> None:
    df = _frame()
    df.to_parquet(tmp_path / "f.parquet")
    report = load(store, tmp_path / "f.parquet", view=view_name, entity="id")
    assert (report.rows, report.written) == (50, 50)
    meta = store.view(view_name)
    assert meta is not None and meta.entity == "id"
    assert meta.types == {"x": "double", "k": "integer", "flag": "boolean", "s": "string"}
    keys = [str(i) for i in df["id"]] + ["nope"]
    rows = store.read(meta, keys, ["x", "k", "flag", "s"])
    assert rows.found.tolist() == [True] * 50 + [False]
    x = df["x"].to_numpy()
    got = rows.columns["x"][:50]
    ok = ~np.isnan(x)
    assert np.array_equal(got[ok].view(np.int64), x[ok].view(np.int64))
    assert np.isnan(got[5]) and rows.null["x"][5] and not rows.null["x"][4]
    assert np.array_equal(rows.columns["k"][:50], df["k"].to_numpy(dtype=float))
    assert np.array_equal(rows.columns["flag"][:50], df["flag"].to_numpy(dtype=float))
    expected_s = [None if v is None or v != v else v for v in df["s"].tolist()]
    assert rows.columns["s"][:50].tolist() == expected_s  # "" stays "", None is null
    assert rows.null["s"][6] and not rows.null["s"][7]
    # the unknown entity: no values, not "null"
    assert np.isnan(rows.columns["x"][50]) and not rows.null["x"][50]
    # a few of the view's columns (Redis: HMGET instead of HGETALL) give the same values
    part = store.read(meta, keys, ["s"])
    assert part.columns["s"].tolist() == rows.columns["s"].tolist()
    assert part.null["s"].tolist() == rows.null["s"].tolist()
    assert part.found.tolist() == rows.found.tolist()
    assert part.ts_us.tolist() == rows.ts_us.tolist()
    part = store.read(meta, keys, ["x"])
    assert np.array_equal(part.columns["x"].view(np.int64), rows.columns["x"].view(np.int64))


def test_numbers_read_as_one_matrix_equal_the_columns(store: FeatureStore, view_name: str,
                                                      tmp_path: Path) -> None:
    """Every backend gives a read of numbers only as a matrix too (a model scores it as it
    is), the same values as a read with a string among them; ids repeated and unknown."""
    df = _frame()
    df.to_parquet(tmp_path / "f.parquet")
    load(store, tmp_path / "f.parquet", view=view_name, entity="id")
    meta = store.view(view_name)
    keys = ["103", "nope", "105", "103", "100", "149"]
    nums = store.read(meta, keys, ["x", "k", "flag"])
    mixed = store.read(meta, keys, ["x", "k", "flag", "s"])
    assert nums.matrix is not None and nums.matrix.shape == (6, 3)
    assert mixed.matrix is None
    assert nums.found.tolist() == mixed.found.tolist() == [True, False, True, True, True, True]
    assert nums.ts_us.tolist() == mixed.ts_us.tolist()
    for j, f in enumerate(["x", "k", "flag"]):
        assert nums.columns[f].view(np.int64).tolist() == \
            mixed.columns[f].view(np.int64).tolist()
        assert nums.matrix[:, j].view(np.int64).tolist() == \
            mixed.columns[f].view(np.int64).tolist()
        assert nums.null[f].tolist() == mixed.null[f].tolist()
    assert nums.null["x"].tolist() == [False, False, True, False, False, False]  # 105: null


def test_latest_timestamp_wins_and_a_reload_changes_nothing(store: FeatureStore,
                                                            view_name: str,
                                                            tmp_path: Path) -> None:
    df = pd.DataFrame({"id": ["a", "b", "c"], "t": [100.0, 100.0, 100.0],
                       "x": [1.0, 2.0, 3.0]})
    df.to_csv(tmp_path / "one.csv", index=False)
    load(store, tmp_path / "one.csv", view=view_name, entity="id", timestamp="t")
    # b older (ignored), c newer (wins), d new; within one file, a's later row wins too
    df2 = pd.DataFrame({"id": ["b", "c", "d", "a", "a"], "t": [50.0, 200.0, 1.0, 150.0, 120.0],
                        "x": [20.0, 30.0, 40.0, 10.0, 11.0]})
    df2.to_csv(tmp_path / "two.csv", index=False)
    r = load(store, tmp_path / "two.csv", view=view_name, entity="id", timestamp="t",
             batch_rows=2)
    assert r.written == 3  # c, d, a@150 (a@120 is older than a@150)
    meta = store.view(view_name)
    assert meta is not None
    rows = store.read(meta, ["a", "b", "c", "d"], ["x"])
    assert rows.columns["x"].tolist() == [10.0, 2.0, 30.0, 40.0]
    assert rows.ts_us.tolist() == [150_000_000, 100_000_000, 200_000_000, 1_000_000]
    again = load(store, tmp_path / "two.csv", view=view_name, entity="id", timestamp="t")
    assert again.written == 0
    assert store.read(meta, ["a", "b", "c", "d"], ["x"]).columns["x"].tolist() == \
        [10.0, 2.0, 30.0, 40.0]


def test_bad_files_are_refused_before_writing(store: FeatureStore, view_name: str,
                                              tmp_path: Path) -> None:
    pd.DataFrame({"key": [1, 2], "x": [1.0, 2.0]}).to_parquet(tmp_path / "a.parquet")
    with pytest.raises(MissingFieldError, match="no entity column 'id'"):
        load(store, tmp_path / "a.parquet", view=view_name, entity="id")
    pd.DataFrame({"id": [1, 2, 1], "x": [1.0, 2.0, 3.0]}).to_parquet(tmp_path / "d.parquet")
    with pytest.raises(InputError, match=re.escape("1 duplicate keys, e.g. {'id': 1}")):
        load(store, tmp_path / "d.parquet", view=view_name, entity="id")
    pd.DataFrame({"id": [1.5, 2.0], "x": [1.0, 2.0]}).to_parquet(tmp_path / "f.parquet")
    with pytest.raises(FieldTypeError, match="keys must be integers or strings"):
        load(store, tmp_path / "f.parquet", view=view_name, entity="id")
    pd.DataFrame({"id": ["a", None], "x": [1.0, 2.0]}).to_parquet(tmp_path / "n.parquet")
    with pytest.raises(FieldTypeError, match="1 null keys"):
        load(store, tmp_path / "n.parquet", view=view_name, entity="id")
    assert store.view(view_name) is None  # nothing was written


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_load_and_get(store_url: str, store: FeatureStore, view_name: str,
                          tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          suffix: str) -> None:
    df = pd.DataFrame({"id": [7, 8], "x": [0.5, -1.25], "s": ["p", "q"]})
    if suffix == ".csv":
        df.to_csv(tmp_path / "f.csv", index=False)
    else:  # (the command once failed on a Parquet file: its progress bar counts the rows)
        df.to_parquet(tmp_path / "f.parquet")
    args = ["features", "load", "--store", store_url, "--view", view_name, "--entity", "id",
            "--data", str(tmp_path / f"f{suffix}"), "--max-age", "3600"]
    assert cli(args) == 0
    assert "2 rows read, 2 written" in capsys.readouterr().err
    assert cli(args) == 0
    assert "2 rows read, 0 written" in capsys.readouterr().err
    meta = store.view(view_name)
    assert meta is not None and meta.max_age == 3600.0
    assert cli(["features", "get", "--store", store_url, "--view", view_name, "8", "9"]) == 0
    out = capsys.readouterr().out
    assert '"x": -1.25' in out and '"s": "q"' in out and '"_found": false' in out
    assert cli(["features", "load", "--store", store_url, "--view", view_name, "--entity",
                "nope", "--data", str(tmp_path / f"f{suffix}")]) == 2
    assert "no entity column 'nope'" in capsys.readouterr().err


def test_cli_refuses_in_one_line_what_the_user_must_fix(
        store_url: str, store: FeatureStore, view_name: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    pd.DataFrame({"id": [1], "x": [1.0]}).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"id": [1], "y": [1.0]}).to_parquet(tmp_path / "b.parquet")
    load(store, tmp_path / "a.parquet", view=view_name, entity="id")
    cases = [
        (["load", "--store", store_url, "--view", view_name, "--entity", "id", "--data",
          str(tmp_path / "b.parquet")], "load it into a new view"),
        (["load", "--store", store_url, "--view", "bad/name", "--entity", "id", "--data",
          str(tmp_path / "a.parquet")], "invalid view name 'bad/name'"),
        (["get", "--store", "bogus://x", "--view", view_name, "1"], "unknown feature store"),
        (["get", "--store", store_url, "--view", "absent_view", "1"], "no view 'absent_view'"),
    ]
    for args, message in cases:
        assert cli(["features", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_a_view_keeps_its_columns(store: FeatureStore, view_name: str, tmp_path: Path) -> None:
    pd.DataFrame({"id": [1], "x": [1.0]}).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"id": [1], "y": [1.0]}).to_parquet(tmp_path / "b.parquet")
    load(store, tmp_path / "a.parquet", view=view_name, entity="id")
    with pytest.raises(InputError, match="load it into a new view"):
        load(store, tmp_path / "b.parquet", view=view_name, entity="id")


def test_redis_reads_n_ids_in_one_round_trip(view_name: str, tmp_path: Path) -> None:
    from tests.services import redis_db

    s = open_store(redis_db())
    try:
        pd.DataFrame({"id": np.arange(300), "x": np.arange(300.0)}).to_parquet(
            tmp_path / "a.parquet")
        load(s, tmp_path / "a.parquet", view=view_name, entity="id")
        meta = s.view(view_name)
        assert meta is not None
        sent: list[int] = []
        s.read(meta, ["0"], ["x"])  # this thread's connection made and connected (handshake)
        cls = type(s._connection())  # type: ignore[attr-defined]
        original = cls.send_packed_command

        def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
            sent.append(1)
            return original(self, command, check_health)

        cls.send_packed_command = counting
        try:
            rows = s.read(meta, [str(i) for i in range(0, 300, 3)], ["x"])
        finally:
            cls.send_packed_command = original
        assert rows.columns["x"].tolist() == [float(i) for i in range(0, 300, 3)]
        assert len(sent) == 1  # 100 HMGETs written at once, answers read back together
    finally:
        s.delete_view(view_name)  # type: ignore[attr-defined]
        s.close()


def test_redis_parses_few_and_many_values_to_the_same_bits(view_name: str, tmp_path: Path,
                                                           monkeypatch) -> None:
    """A few values are parsed by Python's float, many by one Arrow cast: the same bits
    either way, and a read of numbers only also comes as one matrix of its columns."""
    from scorer.features import redis_store
    from tests.services import redis_db

    rng = np.random.default_rng(3)
    n = 40
    df = pd.DataFrame({"id": np.arange(n), "a": rng.normal(size=n) * 10.0 ** rng.integers(
        -300, 300, n), "b": rng.integers(-2 ** 62, 2 ** 62, n), "c": rng.random(n) > 0.5})
    df.loc[0, "a"], df.loc[1, "a"], df.loc[2, "a"] = -0.0, -np.inf, 5e-324
    df.loc[3, "a"], df.loc[4, "a"] = np.nan, 0.1 + 0.2
    df.to_parquet(tmp_path / "v.parquet")
    s = open_store(redis_db())
    try:
        load(s, tmp_path / "v.parquet", view=view_name, entity="id")
        meta = s.view(view_name)
        assert meta is not None
        keys = [str(i) for i in range(n)] + ["absent"]
        few = s.read(meta, keys, ["a", "b", "c"])  # 123 values: Python
        monkeypatch.setattr(redis_store, "_PYTHON_PARSE", 0)
        many = s.read(meta, keys, ["a", "b", "c"])  # Arrow
        for c in "abc":
            assert np.array_equal(few.columns[c].view(np.int64), many.columns[c].view(np.int64))
            assert few.null[c].tolist() == many.null[c].tolist()
        a = few.columns["a"]
        assert np.array_equal(a[:n][~np.isnan(df["a"])].view(np.int64),
                              df["a"].dropna().to_numpy().view(np.int64))
        assert np.signbit(a[0]) and few.null["a"][3] and not few.null["a"][n]
        assert np.array_equal(few.columns["b"][:n], df["b"].to_numpy(dtype=float))
        for rows in (few, many):
            assert rows.matrix is not None and rows.matrix.shape == (n + 1, 3)
            for j, c in enumerate("abc"):
                assert np.array_equal(rows.matrix[:, j].view(np.int64),
                                      rows.columns[c].view(np.int64))
    finally:
        s.delete_view(view_name)  # type: ignore[attr-defined]
        s.close()


def test_redis_splits_a_batch_of_more_text_than_arrow_holds(view_name: str, tmp_path: Path,
                                                             monkeypatch) -> None:
    """A batch whose encoded rows pass Arrow's 2 GiB per string array is written in halves
    (simulated: the encoder refuses more than 7 rows, as it would past 2 GiB); one row that
    alone is too large is a clear error."""
    import pyarrow as pa

    from scorer.features import redis_store
    from tests.services import redis_db

    encode = redis_store._encode

    def small_only(meta, batch):  # type: ignore[no-untyped-def]
        if len(batch) > 7:
            # (what pyarrow 26 raises for 3 string features of 20 MB x 40 rows: measured)
            raise pa.ArrowCapacityError("array cannot contain more than 2147483646 bytes, "
                                        "have 2400003080")
        return encode(meta, batch)

    monkeypatch.setattr(redis_store, "_encode", small_only)
    s = open_store(redis_db())
    try:
        df = pd.DataFrame({"id": np.arange(50), "x": np.arange(50.0) / 3,
                           "s": [f"text {i}" for i in range(50)]})
        df.to_parquet(tmp_path / "a.parquet")
        report = load(s, tmp_path / "a.parquet", view=view_name, entity="id")
        assert (report.rows, report.written) == (50, 50)
        meta = s.view(view_name)
        assert meta is not None
        rows = s.read(meta, [str(i) for i in range(50)], ["x", "s"])
        assert rows.columns["x"].tolist() == (np.arange(50.0) / 3).tolist()
        assert rows.columns["s"].tolist() == [f"text {i}" for i in range(50)]

        def never(meta, batch):  # type: ignore[no-untyped-def]
            raise pa.ArrowCapacityError("array cannot contain more than 2147483646 bytes")

        monkeypatch.setattr(redis_store, "_encode", never)
        with pytest.raises(InputError, match="entity '0' holds over 2 GiB of text"):
            load(s, tmp_path / "a.parquet", view=view_name, entity="id")
    finally:
        s.delete_view(view_name)  # type: ignore[attr-defined]
        s.close()


@pytest.mark.parametrize("batch_rows", [1, 3, 1000])
def test_latest_wins_inside_one_batch_whatever_the_order(store: FeatureStore, view_name: str,
                                                         tmp_path: Path, batch_rows: int,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         ) -> None:
    import scorer.features.loader as loader

    monkeypatch.setattr(loader, "READ_ROWS", 4)  # several reads, each split in writes
    # e: newest row first, then two older ones; f: oldest first; g: a null feature in its
    # newest row (the stored row then has no value for it, not the older one's)
    df = pd.DataFrame({
        "id": ["e", "e", "e", "f", "f", "f", "g", "g", "h"],
        "t": [300.0, 100.0, 200.0, 100.0, 200.0, 300.0, 10.0, 20.0, 5.0],
        "x": [3.0, 1.0, 2.0, 1.0, 2.0, 3.0, 1.0, np.nan, np.nan],
        "s": ["e3", "e1", "e2", "f1", "f2", "f3", "g1", "g2", None],
    })
    df.to_parquet(tmp_path / "d.parquet")
    r = load(store, tmp_path / "d.parquet", view=view_name, entity="id", timestamp="t",
             batch_rows=batch_rows)
    assert r.rows == 9
    meta = store.view(view_name)
    assert meta is not None
    rows = store.read(meta, ["e", "f", "g", "h"], ["x", "s"])
    assert rows.ts_us.tolist() == [300_000_000, 300_000_000, 20_000_000, 5_000_000]
    assert rows.columns["x"][:2].tolist() == [3.0, 3.0] and np.isnan(rows.columns["x"][2])
    assert rows.null["x"].tolist() == [False, False, True, True]
    assert rows.columns["s"].tolist() == ["e3", "f3", "g2", None]
    assert rows.null["s"].tolist() == [False, False, False, True]
    # idempotent: the same file again writes nothing and changes nothing
    again = load(store, tmp_path / "d.parquet", view=view_name, entity="id", timestamp="t",
                 batch_rows=batch_rows)
    assert again.written == 0
    rows2 = store.read(meta, ["e", "f", "g", "h"], ["x", "s"])
    assert rows2.columns["s"].tolist() == rows.columns["s"].tolist()
    assert rows2.ts_us.tolist() == rows.ts_us.tolist()


def test_ill_typed_keys_are_refused_before_writing(store: FeatureStore, view_name: str,
                                                   tmp_path: Path) -> None:
    pd.DataFrame({"id": [True, False], "x": [1.0, 2.0]}).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(FieldTypeError, match="entity column 'id' has type bool"):
        load(store, tmp_path / "b.parquet", view=view_name, entity="id")
    pd.DataFrame({"id": [b"a", b"b"], "x": [1.0, 2.0]}).to_parquet(tmp_path / "y.parquet")
    with pytest.raises(FieldTypeError, match="keys must be integers or strings"):
        load(store, tmp_path / "y.parquet", view=view_name, entity="id")
    pd.DataFrame({"id": [1, 2], "t": ["x", "y"], "x": [1.0, 2.0]}).to_parquet(
        tmp_path / "t.parquet")
    with pytest.raises(FieldTypeError, match=r"timestamp column 't' has type (large_)?string"):
        load(store, tmp_path / "t.parquet", view=view_name, entity="id", timestamp="t")
    assert store.view(view_name) is None


def test_redis_layout_is_as_documented(view_name: str, tmp_path: Path) -> None:
    """docs/features.md: one hash per entity, a field per non-null feature and _ts (integer
    microseconds), numbers as text another language parses back to the same value."""
    import redis

    from tests.services import redis_db

    url = redis_db()
    s = open_store(url)
    try:
        pd.DataFrame({"id": [-5, 12345678901234], "t": [1.5, 2.0], "x": [0.1, np.nan],
                      "k": [-3, 7], "b": [True, False], "s": ["ü\r\n", ""]}).to_parquet(
            tmp_path / "a.parquet")
        r = redis.Redis.from_url(url)
        r.hset(f"ts:f:{view_name}:-5", "stray", "1")  # not the layout's: replaced whole
        load(s, tmp_path / "a.parquet", view=view_name, entity="id", timestamp="t")
        assert r.hgetall(f"ts:f:{view_name}:-5") == {
            b"_ts": b"1500000", b"x": b"0.1", b"k": b"-3", b"b": b"1", b"s": "ü\r\n".encode()}
        assert r.hgetall(f"ts:f:{view_name}:12345678901234") == {
            b"_ts": b"2000000", b"k": b"7", b"b": b"0", b"s": b""}  # x is null: no field
        assert r.hget(f"ts:v:{view_name}", "entity") == b"id"
    finally:
        s.delete_view(view_name)  # type: ignore[attr-defined]
        s.close()


def test_more_bad_files_are_refused_before_writing(store: FeatureStore, view_name: str,
                                                   tmp_path: Path, monkeypatch) -> None:
    """A review's cases: each refused with a user's-terms error, nothing written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from scorer.features import loader

    monkeypatch.setattr(loader, "_CSV_BLOCK", 256)  # the first block: a few rows
    rows = [f"{i},1.5" for i in range(200)] + ["200,oops"]
    (tmp_path / "late.csv").write_text("id,y\n" + "\n".join(rows) + "\n")
    with pytest.raises(FieldTypeError, match="set by the file's first rows"):
        load(store, tmp_path / "late.csv", view=view_name, entity="id")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="not a CSV file with a header"):
        load(store, tmp_path / "empty.csv", view=view_name, entity="id")
    (tmp_path / "dup.csv").write_text("id,x,x\n1,2,3\n")
    with pytest.raises(InputError, match="'x' appear more than once"):
        load(store, tmp_path / "dup.csv", view=view_name, entity="id")
    pq.write_table(pa.table({"id": [1], "u": pa.array([2**64 - 1], pa.uint64())}),
                   tmp_path / "u.parquet")
    with pytest.raises(FieldTypeError, match="cannot be stored"):
        load(store, tmp_path / "u.parquet", view=view_name, entity="id")
    pd.DataFrame({"id": [1, 2], "t": [1_700_000_000_000_000_000, 1_700_000_000_000_000_001],
                  "x": [1.0, 2.0]}).to_parquet(tmp_path / "ns.parquet")
    with pytest.raises(FieldTypeError, match="not seconds since the epoch"):
        load(store, tmp_path / "ns.parquet", view=view_name, entity="id", timestamp="t")
    monkeypatch.setattr(loader, "MAX_FEATURES", 2)
    pd.DataFrame({"id": [1], "a": [1.0], "b": [1.0], "c": [1.0]}).to_parquet(
        tmp_path / "w.parquet")
    with pytest.raises(InputError, match="at most 2"):
        load(store, tmp_path / "w.parquet", view=view_name, entity="id")
    for bad in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="--max-age"):
            load(store, tmp_path / "late.csv", view=view_name, entity="id", max_age=bad)
    assert store.view(view_name) is None  # nothing was written


def test_timestamps_finer_than_microseconds_are_truncated(store: FeatureStore, view_name: str,
                                                          tmp_path: Path) -> None:
    t = pd.to_datetime(["2026-01-01 00:00:00.000000123", "2026-01-01 00:00:01.999999999"])
    pd.DataFrame({"id": [1, 2], "t": t, "x": [1.0, 2.0]}).to_parquet(tmp_path / "t.parquet")
    report = load(store, tmp_path / "t.parquet", view=view_name, entity="id", timestamp="t")
    assert report.written == 2


def test_csv_ids_are_their_text(store: FeatureStore, view_name: str, tmp_path: Path) -> None:
    """Ids with leading zeros stay as written (Arrow would read 007 as the integer 7)."""
    (tmp_path / "z.csv").write_text("id,x\n007,1.5\n7,2.5\n42,3.5\n")
    load(store, tmp_path / "z.csv", view=view_name, entity="id")
    meta = store.view(view_name)
    got = store.read(meta, ["007", "7", "42"], ["x"])
    assert got.found.tolist() == [True, True, True]
    assert got.columns["x"].tolist() == [1.5, 2.5, 3.5]


@pytest.mark.parametrize(("url", "message"), [
    ("redis://127.0.0.1:6379/x", "the database is a number"),
    ("redis://127.0.0.1:6379/5?timeout=abc", "is not a number of seconds"),
    ("redis://127.0.0.1:6379/5?timeout=-1", "positive number of seconds"),
    ("redis://127.0.0.1:notaport/5", "the port is not a number"),
])
def test_a_redis_url_that_would_write_elsewhere_is_refused(url, message):
    """redis-py would read /x as database 0 (someone else's data)."""
    with pytest.raises(InputError, match=message):
        open_store(url)


def test_a_busy_store_is_unavailable_for_metadata_too(view_name: str, monkeypatch) -> None:
    """BUSY / MASTERDOWN / TRYAGAIN answered to the view's metadata read: the store, not
    the data (UNAVAILABLE, which clients retry), as for an entity read."""
    import redis as redis_py

    from scorer.errors import UnavailableError

    s = open_store(redis_db())
    try:
        def busy(*a, **k):
            raise redis_py.ResponseError("BUSY Redis is busy running a script")

        monkeypatch.setattr(s, "_call", busy)
        with pytest.raises(UnavailableError):
            s.view(view_name)
    finally:
        s.close()


@pytest.mark.parametrize(("ttl", "message"), [("0", "at least 1 second"),
                                              ("-5", "at least 1 second"),
                                              ("1.5", "whole number of seconds")])
def test_a_cache_ttl_redis_refuses_is_refused_at_start(ttl, message):
    from scorer.cache import open_cache

    with pytest.raises(ValueError, match=message):
        open_cache(f"redis://127.0.0.1:6379/5?ttl={ttl}")
