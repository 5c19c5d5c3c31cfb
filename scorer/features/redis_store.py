"""The Redis backend of the feature store (``redis://host:port/db``), for a fleet of servers.

Layout (docs/features.md; plain strings, so any language's Redis client can read it):

- ``ts:v:<view>``: a hash with the view's metadata: ``entity`` (the entity column),
  ``features`` (a JSON array of feature names, in load order), ``types`` (a JSON object
  feature -> ``double`` | ``integer`` | ``boolean`` | ``string``), ``max_age`` (seconds,
  decimal; absent: none) and ``format`` (``1``).
- ``ts:f:<view>:<entity id>``: one hash per entity: a field per non-null feature and ``_ts``,
  the row's event timestamp in integer microseconds since the epoch. Numbers are decimal
  text (doubles in their shortest round-trip form, ``inf``/``-inf``; reading them back gives
  the same bits), booleans ``1``/``0``, strings UTF-8. A null feature has no field.

Reading N entities is one pipelined round trip (one ``HMGET`` per entity). Writing runs a Lua
script per batch that replaces an entity's hash only when the new row's ``_ts`` is strictly
newer, so concurrent or repeated loads keep the latest row.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..errors import UnavailableError
from .store import Rows, ViewMeta, check_view_name, empty_rows

#: seconds a read or write may wait for Redis before the request is answered UNAVAILABLE
DEFAULT_TIMEOUT = 0.3

# KEYS: entity hashes; ARGV: n_features, feature names, then per entity: ts, a mask of
# '1'/'0' (feature present), the present values in feature order
_WRITE_LUA = """
local nf = tonumber(ARGV[1])
local p = 2 + nf
local written = 0
for i = 1, #KEYS do
  local ts = ARGV[p]
  local mask = ARGV[p + 1]
  p = p + 2
  local cur = redis.call('HGET', KEYS[i], '_ts')
  local newer = (not cur) or (tonumber(cur) < tonumber(ts))
  local args = {}
  for j = 1, nf do
    if string.byte(mask, j) == 49 then
      if newer then
        args[#args + 1] = ARGV[1 + j]
        args[#args + 1] = ARGV[p]
      end
      p = p + 1
    end
  end
  if newer then
    redis.call('DEL', KEYS[i])
    redis.call('HSET', KEYS[i], '_ts', ts, unpack(args))
    written = written + 1
  end
end
return written
"""


def redact(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


class RedisStore:
    """A feature store in Redis.

    Parameters
    ----------
    url : str
        ``redis://[:password@]host:port/db`` (``?timeout=SECONDS`` sets the timeout too).
    timeout : float, optional
        Socket connect and read timeout in seconds (default :data:`DEFAULT_TIMEOUT`): a store
        that does not answer within it makes a lookup raise ``UnavailableError``.
    """

    def __init__(self, url: str, *, timeout: float | None = None) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        q = parse_qs(urlsplit(url).query)
        if timeout is None:
            timeout = float(q["timeout"][0]) if "timeout" in q else DEFAULT_TIMEOUT
        self.timeout = timeout
        base = url.split("?", 1)[0]
        # no retries: a request must get its answer (or UNAVAILABLE) within one timeout; the
        # pool reconnects on the next call, so a store that comes back is used again at once
        self._r = redis.Redis.from_url(base, socket_timeout=timeout,
                                       socket_connect_timeout=timeout,
                                       retry=Retry(NoBackoff(), 0), retry_on_timeout=False,
                                       health_check_interval=0)
        self._errors: tuple[type[BaseException], ...] = (redis.ConnectionError,
                                                         redis.TimeoutError, OSError)
        self._script = self._r.register_script(_WRITE_LUA)

    def _unavailable(self, exc: BaseException) -> UnavailableError:
        return UnavailableError(f"feature store {redact(self.url)} is unreachable "
                                f"({type(exc).__name__}: {exc})")

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._errors as exc:
            raise self._unavailable(exc) from exc

    # --- metadata -----------------------------------------------------------------------------
    def view(self, name: str) -> ViewMeta | None:
        check_view_name(name)
        d = self._call(self._r.hgetall, f"ts:v:{name}")
        if not d:
            return None
        d = {k.decode(): v.decode() for k, v in d.items()}
        return ViewMeta(name, d["entity"], tuple(json.loads(d["features"])),
                        json.loads(d["types"]),
                        float(d["max_age"]) if d.get("max_age") else None)

    def define_view(self, meta: ViewMeta) -> None:
        from .loader import check_compatible

        check_view_name(meta.name)
        old = self.view(meta.name)
        if old is not None:
            check_compatible(old, meta)
        fields = {"entity": meta.entity, "features": json.dumps(list(meta.features)),
                  "types": json.dumps(meta.types), "format": "1"}
        key = f"ts:v:{meta.name}"
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(key, mapping=fields)
        if meta.max_age is None:
            pipe.hdel(key, "max_age")
        else:
            pipe.hset(key, "max_age", repr(float(meta.max_age)))
        self._call(pipe.execute)

    # --- rows ---------------------------------------------------------------------------------
    def write(self, meta: ViewMeta, keys: list[str], ts_us: np.ndarray,
              columns: dict[str, np.ndarray]) -> int:
        feats = list(meta.features)
        n = len(keys)
        if n == 0:
            return 0
        texts = [_to_text(columns[f], meta.types[f]) for f in feats]
        nulls = np.zeros(n, dtype=bool)
        for t in texts:
            nulls |= t[1]
        ts = [str(int(v)) for v in np.asarray(ts_us).tolist()]
        full = "1" * len(feats)
        argv: list[Any] = [len(feats), *feats]
        rows = zip(*[t[0] for t in texts], strict=True)
        for i, vals in enumerate(rows):
            if nulls[i]:
                argv += [ts[i], "".join("0" if v is None else "1" for v in vals)]
                argv += [v for v in vals if v is not None]
            else:
                argv += [ts[i], full]
                argv += vals
        prefix = f"ts:f:{meta.name}:"
        return int(self._call(self._script, [prefix + k for k in keys], argv))

    def read(self, meta: ViewMeta, keys: list[str], features: list[str]) -> Rows:
        n = len(keys)
        if n == 0:
            return empty_rows(0, meta, features)
        prefix = f"ts:f:{meta.name}:"
        fields = [*features, "_ts"]
        pipe = self._r.pipeline(transaction=False)
        for k in keys:
            pipe.hmget(prefix + k, fields)
        res = self._call(pipe.execute)  # one round trip for all N ids
        ts = [r[-1] for r in res]
        found = np.fromiter((t is not None for t in ts), dtype=bool, count=n)
        ts_us = np.fromiter((int(t) if t is not None else 0 for t in ts), dtype=np.int64,
                            count=n)
        cols: dict[str, np.ndarray] = {}
        null: dict[str, np.ndarray] = {}
        for j, f in enumerate(features):
            raw = [r[j] for r in res]
            isnull = np.fromiter((v is None for v in raw), dtype=bool, count=n)
            null[f] = isnull & found
            if meta.types.get(f) == "string":
                col = np.empty(n, dtype=object)
                col[:] = [None if v is None else v.decode("utf-8") for v in raw]
            else:
                col = np.fromiter((np.nan if v is None else float(v) for v in raw),
                                  dtype=np.float64, count=n)
            cols[f] = col
        return Rows(found, ts_us, cols, null)

    def delete_view(self, name: str) -> int:
        """Remove a view and its rows (tests, operators); returns keys deleted."""
        check_view_name(name)
        n = 0
        for batch in _chunks(self._r.scan_iter(match=f"ts:f:{name}:*", count=1000), 1000):
            n += self._r.delete(*batch)
        return n + self._r.delete(f"ts:v:{name}")

    def ping(self) -> bool:
        return bool(self._call(self._r.ping))

    def close(self) -> None:
        self._r.close()


def _chunks(it: Any, size: int) -> Any:
    batch = []
    for x in it:
        batch.append(x)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _to_text(col: np.ndarray, type_: str) -> tuple[list[str | None], np.ndarray]:
    """A column as the Redis layout's text values (None where null) and its null mask."""
    if type_ == "string":
        vals = [None if v is None else str(v) for v in col.tolist()]
        return vals, np.fromiter((v is None for v in vals), dtype=bool, count=len(vals))
    a = np.asarray(col, dtype=np.float64)
    isnull = np.isnan(a)
    if type_ == "double":
        # numpy's float -> str is the shortest text that parses back to the same bits
        text = a.astype(str).tolist()
    elif type_ == "boolean":
        text = np.where(a != 0, "1", "0").tolist()
    else:
        text = [str(int(v)) if v == v else "" for v in a.tolist()]
    if isnull.any():
        text = [None if m else t for t, m in zip(text, isnull.tolist(), strict=True)]
    return text, isnull
