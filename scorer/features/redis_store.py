"""The Redis backend of the feature store (``redis://host:port/db``), for a fleet of servers.

Layout (docs/features.md; plain strings, so any language's Redis client can read it):

- ``ts:v:<view>``: a hash with the view's metadata: ``entity`` (the entity column),
  ``features`` (a JSON array of feature names, in load order), ``types`` (a JSON object
  feature -> ``double`` | ``integer`` | ``boolean`` | ``string``), ``max_age`` (seconds,
  decimal; absent: none) and ``format`` (``1``).
- ``ts:f:<view>:<entity id>``: one hash per entity: a field per non-null feature and ``_ts``,
  the row's event timestamp in integer microseconds since the epoch. Numbers are decimal
  text (doubles with the fewest digits that round-trip, ``inf``/``-inf``; reading them back
  gives the same bits), booleans ``1``/``0``, strings UTF-8. A null feature has no field.

Reading N entities is one pipelined round trip (one ``HMGET`` per entity). Writing runs a Lua
script per batch that replaces an entity's hash only when the new row's ``_ts`` is strictly
newer, so concurrent or repeated loads keep the latest row; batches are encoded column by
column with Arrow straight into the Redis protocol and pipelined (no MULTI).
"""

from __future__ import annotations

import errno
import json
import os
import threading
import weakref
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..errors import FeatureDataError, InputError, UnavailableError
from ..urls import redact, without_options
from .resp import DONE, ERROR_REPLY, KERNELS, MORE, STRTOD
from .resp import ready as resp_ready
from .store import Batch, Rows, ViewMeta, check_view_name, empty_rows, numeric_rows

#: seconds a read or write may wait for Redis before the request is answered UNAVAILABLE
DEFAULT_TIMEOUT = 0.3
#: seconds a loader's write call may wait (a batch's script runs for milliseconds, but a
#: busy server may queue it behind others)
WRITE_TIMEOUT = 60.0
#: features per view at most (2 stack slots per field in the write script's ``unpack``;
#: Redis's Lua allows 8000)
MAX_FEATURES = 3900
#: write calls in flight on the loader's connection (pipelined, no MULTI)
_WINDOW = 4
#: bytes of one read's answers at most (a store that sends more is refused, not buffered)
_MAX_ANSWER = 1 << 31
#: a thread keeps its answer buffer for the next read up to this size
_KEEP_BUFFER = 16 << 20

# KEYS: entity hashes; ARGV per entity: its timestamp, the number k of its present
# features, then k (name, value) pairs; the hash is replaced when the timestamp is strictly
# newer. (unpack passes the pairs to HSET without a Lua loop per value.)
_WRITE_LUA = """
local p = 1
local written = 0
for i = 1, #KEYS do
  local ts = ARGV[p]
  local k = tonumber(ARGV[p + 1])
  local cur = redis.call('HGET', KEYS[i], '_ts')
  if (not cur) or tonumber(cur) < tonumber(ts) then
    redis.call('DEL', KEYS[i])
    redis.call('HSET', KEYS[i], '_ts', ts, unpack(ARGV, p + 2, p + 1 + 2 * k))
    written = written + 1
  end
  p = p + 2 + 2 * k
end
return written
"""


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
        parts = urlsplit(url)
        q = parse_qs(parts.query)
        where = f"feature store '{redact(url)}'"
        db = parts.path.strip("/")
        if parts.scheme in ("redis", "rediss") and db and not db.isdigit():
            # (redis-py would ignore it and use database 0: someone else's data)
            raise InputError(f"{where}: the database is a number (redis://HOST:PORT/DB), "
                             f"not '{db}'")
        try:
            parts.port  # noqa: B018 - raises for a port that is not a number
        except ValueError:
            raise InputError(f"{where}: the port is not a number") from None
        if timeout is None and "timeout" in q:
            try:
                timeout = float(q["timeout"][0])
            except ValueError:
                raise InputError(f"{where}: timeout={q['timeout'][0]!r} is not a number of "
                                 "seconds") from None
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        if not 0 < timeout < float("inf"):
            raise InputError(f"{where}: the timeout must be a positive number of seconds, "
                             f"not {timeout}")
        self.timeout = timeout
        base = _client_url(url)
        # no retries: a request must get its answer (or UNAVAILABLE) within one timeout; the
        # pool reconnects on the next call, so a store that comes back is used again at once
        # RESP2: no push frames (redis-py 8 speaks RESP3 by default and may enable
        # maintenance notifications) between the answers the compiled reader reads
        self._r = redis.Redis.from_url(base, socket_timeout=timeout,
                                       socket_connect_timeout=timeout,
                                       retry=Retry(NoBackoff(), 0), retry_on_timeout=False,
                                       health_check_interval=0, protocol=2)
        self._errors: tuple[type[BaseException], ...] = (redis.ConnectionError,
                                                         redis.TimeoutError, OSError)
        self._w: Any = None
        # (view, *features) -> the read command's parts (see read)
        self._hmget: dict[tuple[str, ...], Any] = {}
        # each request thread reads on a connection of its own (see _connection)
        self._local = threading.local()
        self._conns: weakref.WeakSet[Any] = weakref.WeakSet()
        self._conns_lock = threading.Lock()

    def _connection(self) -> Any:
        """This thread's connection for reads, made on its first read (after a fork too).

        The pool's ``get_connection`` / ``release`` cost ~25 µs per read in redis-py 8
        (deprecated-argument check, observability hooks, a ``poll`` of the socket), about a
        sixth of a one-id lookup. A connection that failed is disconnected by the read, and
        the next read connects it again (redis-py connects on send): a store that comes back
        is used without a restart."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            conn = self._r.connection_pool.make_connection()
            local.conn, local.pid = conn, os.getpid()
            with self._conns_lock:
                self._conns.add(conn)
        return conn

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
        """The view's metadata, None when the store has no view ``name``.

        Raises
        ------
        FeatureDataError
            ``ts:v:<name>`` is not a hash of the layout's fields (written by another client).
        """
        import redis

        check_view_name(name)
        try:
            d = self._call(self._r.hgetall, f"ts:v:{name}")
        except redis.ResponseError as exc:
            if _transient(exc):  # BUSY, MASTERDOWN, ...: the store, not the data
                raise self._unavailable(exc) from exc
            # WRONGTYPE: not a hash
            raise FeatureDataError(f"feature view '{name}': its metadata key ts:v:{name} "
                                   f"cannot be read as a hash ({exc})") from exc
        if not d:
            return None
        try:
            d = {k.decode(): v.decode() for k, v in d.items()}
            features = json.loads(d["features"])
            types = json.loads(d["types"])
            max_age = float(d["max_age"]) if d.get("max_age") else None
            if not (isinstance(d["entity"], str) and isinstance(features, list)
                    and all(isinstance(f, str) for f in features)
                    and isinstance(types, dict)
                    and all(types.get(f) in _TYPES for f in features)):
                raise ValueError("entity, features or types do not follow the layout")
        except (KeyError, ValueError) as exc:  # (UnicodeDecodeError, JSONDecodeError too)
            what = f"no field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise FeatureDataError(
                f"feature view '{name}': its metadata (hash ts:v:{name}) does not follow the "
                f"layout of docs/features.md ({what}); load the view again") from exc
        return ViewMeta(name, d["entity"], tuple(features), types, max_age)

    def define_view(self, meta: ViewMeta) -> None:
        from .loader import check_compatible

        check_view_name(meta.name)
        if len(meta.features) > MAX_FEATURES:
            raise ValueError(f"view '{meta.name}' has {len(meta.features)} features: a Redis "
                             f"view holds at most {MAX_FEATURES} (the write script passes a "
                             "row's fields to HSET at once; Lua's stack limit)")
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
    def write(self, meta: ViewMeta, batch: Batch, *, batch_rows: int = 1000) -> int:
        """See :meth:`FeatureStore.write`: the batch is encoded column by column (Arrow),
        straight into the Redis protocol, and sent as pipelined ``EVALSHA`` calls of
        ``batch_rows`` entities each (no MULTI; each call is atomic by itself, and the
        script's timestamp comparison makes the order of calls irrelevant)."""
        n = len(batch)
        if n == 0:
            return 0
        try:
            keys, rows, row_args = _encode(meta, batch)
        except Exception as exc:
            if not _offset_overflow(exc):
                raise
            # over 2 GiB of text in one Arrow string array (its offsets are 32-bit): halves
            if n == 1:
                raise InputError(f"view '{meta.name}': the row of entity "
                                 f"'{batch.keys[0].as_py()}' holds over 2 GiB of text") from exc
            h = n // 2
            return (self.write(meta, batch.slice(0, h), batch_rows=batch_rows)
                    + self.write(meta, batch.slice(h, n), batch_rows=batch_rows))
        ko, kdata = _offsets(keys), _data(keys)
        ro, rdata = _offsets(rows), _data(rows)
        cum = np.concatenate(([0], np.cumsum(row_args)))
        client = self._writer()
        written = 0
        try:
            sha = client.script_load(_WRITE_LUA)
            conn = client.connection_pool.get_connection()
        except self._errors as exc:
            raise self._unavailable(exc) from exc
        call = _bulk("EVALSHA") + _bulk(sha)
        pending = 0
        try:
            for s in range(0, n, batch_rows):
                e = min(n, s + batch_rows)
                argc = 3 + (e - s) + int(cum[e] - cum[s])
                conn.send_packed_command(
                    [b"*%d\r\n" % argc, call, _bulk(str(e - s)),
                     kdata[ko[s]:ko[e]], rdata[ro[s]:ro[e]]], check_health=False)
                pending += 1
                if pending == _WINDOW:  # keep a few calls in flight, read the oldest answer
                    written += int(conn.read_response())
                    pending -= 1
            while pending:
                written += int(conn.read_response())
                pending -= 1
        except BaseException as exc:
            conn.disconnect()  # answers may be left unread: the connection is not reusable
            if isinstance(exc, self._errors):
                raise self._unavailable(exc) from exc
            raise
        finally:
            client.connection_pool.release(conn)
        return written

    def _writer(self) -> Any:
        """A client for loading: the read timeout is for requests, not for bulk writes."""
        if self._w is None:
            import redis

            self._w = redis.Redis.from_url(_client_url(self.url),
                                           socket_timeout=max(self.timeout, WRITE_TIMEOUT),
                                           socket_connect_timeout=self.timeout)
        return self._w

    def read(self, meta: ViewMeta, keys: list[str], features: list[str]) -> Rows:
        """See :meth:`FeatureStore.read`: one ``HGETALL`` per key (``HMGET`` when reading
        less than half the view's features), all written at once (packed here: the field
        list is encoded once per view, not per call) and the answers read back together;
        decoded by column (:func:`_decode`)."""
        n = len(keys)
        if n == 0:
            return empty_rows(0, meta, features)
        # most of the view: HGETALL walks a hash once, where HMGET searches it per field
        # (Redis keeps a hash of up to 128 fields as a list)
        whole = 2 * len(features) >= len(meta.features)
        cmd = self._hmget.get((meta.name, whole, *features))
        if cmd is not None and cmd[4] is not meta:  # the view read again: its types too?
            if cmd[5] != tuple(meta.types.get(f) for f in features):
                cmd = None
            else:  # (compared once per metadata object, not on every read)
                cmd = self._hmget[(meta.name, whole, *features)] = (*cmd[:4], meta, cmd[5])
        if cmd is None:
            fields = [*features, "_ts"]
            names = tuple(f.encode() for f in fields)
            types = tuple(meta.types.get(f) for f in features)
            # numbers only, each name once (a feature named _ts shares the timestamp's
            # field): the names as resp.scan_replies takes them
            numeric = "string" not in types and len(set(names)) == len(names)
            cmd = ((b"*2\r\n$7\r\nHGETALL\r\n", b"") if whole else
                   (b"*%d\r\n$5\r\nHMGET\r\n" % (len(fields) + 2),
                    b"".join(_bulk(f) for f in fields)),
                   f"ts:f:{meta.name}:".encode(), names,
                   (np.frombuffer(b"".join(names), dtype=np.uint8).copy(),
                    np.cumsum([0, *map(len, names)], dtype=np.int64)) if numeric else None,
                   meta, types)
            if len(self._hmget) > 1000:
                self._hmget.clear()
            self._hmget[(meta.name, whole, *features)] = cmd
        (head, tail), prefix, names, scan = cmd[:4]
        out = []
        for k in keys:
            kb = prefix + k.encode()
            out.append(b"%s$%d\r\n%s\r\n%s" % (head, len(kb), kb, tail))
        conn = self._connection()
        payload = [b"".join(out)]
        # numbers only: the answers are read from the socket by compiled code (see .resp),
        # once it is compiled; until then, and for views with strings, through hiredis
        fast = (whole, *scan) if scan is not None and resp_ready() else None
        try:
            try:
                res = self._round_trip(conn, payload, n, fast)
            except _ClosedConnection:
                # a connection Redis closed since this thread's last read (a restart, its
                # idle timeout, a proxy): reads are idempotent, so once more on a new one
                # (connecting is bounded by the timeout; a store that is down fails this
                # one too)
                res = self._round_trip(conn, payload, n, fast, again=True)
        except _NotAHash as e:  # WRONGTYPE, named here where the key is known
            k = keys[e.index]
            raise FeatureDataError(
                f"feature store {redact(self.url)}: feature view '{meta.name}': entity {k!r} "
                f"(key {(prefix + k.encode()).decode(errors='replace')}) cannot be read as a "
                f"hash ({e.__cause__})") from e.__cause__
        if type(res) is tuple:  # (buffer, spans) of the compiled reader
            return self._numbers(meta, features, keys, *res)
        if not all(type(r) in (list, dict) for r in res):
            raise FeatureDataError(f"feature store {redact(self.url)}: an answer that is not "
                                   "the hash of an entity")
        if whole:  # a map (RESP3) or [field, value, ...] -> the values of ``names``
            try:
                res = [list(map((r if isinstance(r, dict) else
                                 dict(zip(r[::2], r[1::2], strict=True))).get, names))
                       for r in res]
            except ValueError:  # an odd number of elements
                raise FeatureDataError(f"feature store {redact(self.url)}: an answer that is "
                                       "not the hash of an entity") from None
        return _decode(meta, features, res, keys)

    def _numbers(self, meta: ViewMeta, features: list[str], keys: list[str], buf: np.ndarray,
                 spans: np.ndarray) -> Rows:
        """:func:`_decode` of the answers in ``buf`` (``spans``: see
        :func:`.resp.scan_replies`), every feature a number: compiled where the text allows
        (:func:`.resp.parse_numbers`), the values it flags by Python's ``float`` / ``int``
        as :func:`_decode` parses them; a value neither reads is refused by :func:`_decode`
        itself (the same error)."""
        n, k = len(keys), len(features)
        block = np.empty((k, n))
        null = np.empty((k, n), dtype=bool)
        ts = np.empty(n, dtype=np.int64)
        found = np.empty(n, dtype=bool)
        slow = np.empty((n, k + 1), dtype=bool)
        if KERNELS[1](buf, spans, block, null, ts, found, slow, STRTOD, self._local.endp):
            try:
                for r, f in zip(*np.nonzero(slow), strict=True):
                    a, ln = spans[r, f]
                    v = bytes(buf[a:a + ln])
                    _strict([v])
                    if f < k:
                        block[f, r] = float(v)
                        continue
                    t = int(v)
                    if not -(1 << 63) <= t < 1 << 63:
                        raise OverflowError("timestamp out of int64's range")
                    ts[r] = t
            except (ValueError, OverflowError):
                res = [[None if a < 0 else bytes(buf[a:a + ln]) for a, ln in row]
                       for row in spans.tolist()]
                return _decode(meta, features, res, keys)  # raises, naming the value
            null = None  # (values Python read may be NaN: computed again)
        return numeric_rows(features, block, found, ts, null)

    def _read_answers(self, conn: Any, n: int, whole: bool, names: np.ndarray,
                      name_off: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The ``n`` answers on ``conn``, received into this thread's buffer and scanned by
        :func:`.resp.scan_replies`: (buffer, spans); None when the connection does not show
        its socket (the caller reads through hiredis)."""
        import redis

        sock = getattr(conn, "_sock", None)
        if sock is None:
            return None
        local = self._local
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = np.empty(1 << 16, dtype=np.uint8)
            local.endp = np.zeros(1, dtype=np.int64)  # (strtod's end pointer, see _numbers)
        spans = np.empty((n, len(name_off) - 1, 2), dtype=np.int64)
        state = np.zeros(3, dtype=np.int64)
        end = 0
        try:
            while True:
                if end == len(buf):  # a long answer: a larger buffer, kept for the next ones
                    grown = np.empty(min(2 * len(buf), _MAX_ANSWER + 1), dtype=np.uint8)
                    grown[:end] = buf[:end]
                    buf = local.buf = grown
                got = _recv(sock, buf[end:], redis)
                end += got
                if end > _MAX_ANSWER:
                    raise FeatureDataError(f"feature store {redact(self.url)}: the answer to "
                                           f"{n} lookups is larger than {_MAX_ANSWER:,} bytes")
                st = KERNELS[0](buf, end, state, whole, names, name_off, spans)
                if st == DONE:
                    if state[1] == end:
                        return buf, spans
                    raise FeatureDataError(f"feature store {redact(self.url)}: more bytes than "
                                           "the answers to the lookup")
                if st == ERROR_REPLY:  # as redis-py words it (LOADING, NOAUTH: unreachable)
                    a = int(state[2]) + 1
                    line = bytes(buf[a:end]).split(b"\r\n", 1)[0].decode("utf-8", "replace")
                    parse = getattr(getattr(conn, "_parser", None), "parse_error", None)
                    err = parse(line) if parse is not None else redis.ResponseError(line)
                    err.reply_index = int(state[0])  # (which lookup: the caller names it)
                    raise err
                if st != MORE:
                    raise FeatureDataError(f"feature store {redact(self.url)}: an answer that "
                                           "is not the hash of an entity")
        finally:
            if len(buf) > _KEEP_BUFFER:  # (a rare large answer's buffer is not kept)
                local.buf = None

    def _round_trip(self, conn: Any, payload: list[bytes], n: int,
                    fast: tuple[bool, np.ndarray, np.ndarray] | None, *,
                    again: bool = False) -> Any:
        """Send ``payload`` (``n`` commands) on ``conn`` and read the ``n`` answers: one round
        trip; with ``fast`` (``whole`` and the names of :meth:`_read_answers`) the buffer and
        spans of the compiled reader when it can read them, else hiredis's replies. Raises
        ``_ClosedConnection`` when a connection that was connected before this call turns
        out closed (unless ``again``), else UnavailableError when Redis does not answer,
        ``_NotAHash`` (its ``index``: which lookup) when a key is not a hash."""
        import redis

        reused = not again and getattr(conn, "_sock", None) is not None
        answers: list[Any] = []
        try:
            conn.send_packed_command(payload, check_health=False)
            if fast is not None:
                got = self._read_answers(conn, n, *fast)
                if got is not None:
                    return got
            for _ in range(n):  # one round trip for all N ids
                answers.append(conn.read_response())
            return answers
        except BaseException as exc:
            conn.disconnect()  # answers may be left unread: not reusable
            if isinstance(exc, redis.ResponseError):
                if _transient(exc):
                    raise self._unavailable(exc) from exc
                # WRONGTYPE: a key that is not a hash (the caller names it)
                raise _NotAHash(getattr(exc, "reply_index", len(answers))) from exc
            if isinstance(exc, redis.InvalidResponse):  # not RESP at all
                raise FeatureDataError(f"feature store {redact(self.url)}: an answer that is "
                                       f"not Redis's protocol ({exc})") from exc
            if reused and isinstance(exc, redis.ConnectionError) \
                    and not isinstance(exc, redis.TimeoutError):
                raise _ClosedConnection from exc
            if isinstance(exc, self._errors):
                raise self._unavailable(exc) from exc
            raise

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
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            conn.disconnect()
        self._r.close()
        if self._w is not None:
            self._w.close()


def _recv(sock: Any, into: np.ndarray, redis: Any) -> int:
    """``sock.recv_into(into)``, its failures raised as redis-py's reader raises them (a
    timeout: ``redis.TimeoutError``; a closed, reset or dead connection:
    ``redis.ConnectionError``). ``redis``: the module (the caller's import: not one per
    read)."""
    try:
        got = sock.recv_into(into)
    except TimeoutError as exc:
        if exc.errno == errno.ETIMEDOUT:  # the OS's: the connection is dead, not slow
            raise redis.ConnectionError(f"Error while reading from socket: {exc.args}") from exc
        raise redis.TimeoutError("Timeout reading from socket") from exc
    except OSError as exc:
        raise redis.ConnectionError(f"Error while reading from socket: {exc.args}") from exc
    if not got:
        raise redis.ConnectionError("Connection closed by server.")
    return got


def _client_url(url: str) -> str:
    """``url`` for redis-py: its query options kept, but ``timeout`` (the store's own) and
    ``protocol`` (the store's connections speak RESP2)."""
    return without_options(url, ("timeout", "protocol"))


#: error replies of a Redis that cannot answer for now (a script running too long, a replica
#: cut off from its primary): the store is unavailable, its data is not wrong
_TRANSIENT = frozenset(("BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"))


def _transient(exc: BaseException) -> bool:
    """An error reply that says the server cannot answer now (:data:`_TRANSIENT`), not that
    the data is wrong."""
    code = getattr(exc, "status_code", None) or str(exc).split(" ", 1)[0]
    return code in _TRANSIENT


class _ClosedConnection(Exception):
    """A thread's connection was closed by the other end since its last use."""


class _NotAHash(Exception):
    """Lookup ``index``'s key holds another type (Redis's error is the ``__cause__``)."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


#: the feature types of the layout
_TYPES = frozenset(("double", "integer", "boolean", "string"))


def _chunks(it: Any, size: int) -> Any:
    batch = []
    for x in it:
        batch.append(x)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _bulk(text: str) -> bytes:
    b = text.encode()
    return b"$%d\r\n%s\r\n" % (len(b), b)


def _resp(values: Any) -> Any:
    """Each value of a string array as a RESP bulk string, ``$<len>\\r\\n<bytes>\\r\\n``
    (nulls stay null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lens = pc.cast(pc.binary_length(values), pa.string())
    return pc.binary_join_element_wise("$", lens, "\r\n", values, "\r\n", "")


def _text(col: Any, type_: str) -> Any:
    """A feature column as the layout's text (null where null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if type_ == "boolean":
        return pc.if_else(col, "1", "0")
    if type_ == "double":
        # Arrow prints the shortest digits that parse back to the same bits (the
        # double-conversion library), e.g. 0.1, 1e-300, 0.00001, inf, -inf
        return pc.cast(col.cast(pa.float64()), pa.string())
    return pc.cast(col, pa.string())  # integer digits; strings as they are


def _offset_overflow(exc: BaseException) -> bool:
    """``exc`` is Arrow refusing a string array of more than 2 GiB (32-bit offsets)."""
    import pyarrow as pa

    # ("array cannot contain more than 2147483646 bytes, have ..." from the joins; an
    # "offset overflow" ArrowInvalid from other kernels)
    return isinstance(exc, pa.ArrowCapacityError) or (
        isinstance(exc, pa.ArrowInvalid) and "overflow" in str(exc).lower())


def _encode(meta: ViewMeta, batch: Batch) -> tuple[Any, Any, np.ndarray]:
    """The write script's keys and per-row arguments, already in the Redis protocol.

    Returns
    -------
    keys : pyarrow.StringArray, shape (n,)
        ``$<len>\\r\\nts:f:<view>:<id>\\r\\n`` per row.
    rows : pyarrow.StringArray, shape (n,)
        Per row: its timestamp, the number k of present features and their k (name, value)
        pairs, each a RESP bulk string.
    row_args : ndarray of int64, shape (n,)
        Arguments per row (2 + 2 k).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(batch)
    keys = _resp(pc.binary_join_element_wise(f"ts:f:{meta.name}:", batch.keys, ""))
    present = np.zeros(n, dtype=np.int64)
    pairs = []
    for f in meta.features:
        c = batch.columns[f]
        present += 1 if c.null_count == 0 else c.is_valid().to_numpy(zero_copy_only=False)
        # "$<len>\r\n<name>\r\n$<len>\r\n<value>\r\n", null where the value is null
        pairs.append(pc.binary_join_element_wise(_bulk(f).decode(), _resp(_text(c, meta.types[f])),
                                                 ""))
    ts = _resp(pc.cast(pa.array(np.asarray(batch.ts_us, dtype=np.int64)), pa.string()))
    k = _resp(pc.cast(pa.array(present), pa.string()))
    rows = pc.binary_join_element_wise(ts, k, *pairs, "", null_handling="skip")
    return keys, rows, 2 + 2 * present


#: numbers parsed one by one in Python at most (more: one Arrow cast)
_PYTHON_PARSE = 512
_NAN = float("nan")


#: what Python's ``int`` and ``float`` accept and the layout (and Arrow's cast) do not:
#: whitespace around a number, ``_`` between digits
_LOOSE = b" \t\n\r\x0b\x0c_"


def _decode(meta: ViewMeta, features: list[str], res: list[list[bytes | None]],
            keys: list[str]) -> Rows:
    """HMGET answers (per key: the features' values, then ``_ts``; None where absent) as
    :class:`~.store.Rows`. The numbers of all keys are parsed together, both ways correctly
    rounded (a double comes back with its bits): up to :data:`_PYTHON_PARSE` of them by
    Python's ``float``, more by one Arrow cast (a few calls whatever the number of keys, but
    ~100 us of fixed cost); strings and timestamps in Python. Both ways accept the same
    texts. When every feature asked for is a number, ``Rows.matrix`` holds them and the
    columns by name are views of it.

    Raises
    ------
    FeatureDataError
        A stored value (or timestamp) that is not one of its type, naming the entity.
    """
    try:
        return _decode_rows(meta, features, res)
    except (ValueError, OverflowError) as exc:  # (ArrowInvalid, UnicodeDecodeError too)
        raise _bad_value(meta, features, res, keys) from exc


def _strict(values: Any) -> None:
    """ValueError when a text of ``values`` (bytes, None) holds what :data:`_LOOSE` lists."""
    joined = b"".join(filter(None, values))
    if len(joined.translate(None, _LOOSE)) != len(joined):
        raise ValueError("whitespace or '_' in a stored number")


def _bad_value(meta: ViewMeta, features: list[str], res: list[list[bytes | None]],
               keys: list[str]) -> FeatureDataError:
    """The error naming the first stored value of ``res`` that is not of its type."""
    k = len(features)
    for key, r in zip(keys, res, strict=True):
        for j, (name, v) in enumerate(zip([*features, "_ts"], r, strict=True)):
            if v is None:
                continue
            kind = "timestamp" if j == k else meta.types.get(name, "double")
            try:
                if kind == "string":
                    v.decode("utf-8")
                    continue
                _strict([v])
                if kind == "timestamp":
                    if not -(1 << 63) <= int(v) < 1 << 63:
                        raise ValueError("out of int64's range")
                    continue
                float(v)
                import pyarrow as pa

                pa.array([v], type=pa.binary()).view(pa.string()).cast(pa.float64())
            except ValueError:
                what = "an integer timestamp" if kind == "timestamp" else f"a {kind}"
                return FeatureDataError(
                    f"feature view '{meta.name}': entity '{key}' holds {name} = {v[:60]!r}, "
                    f"which is not {what} of the layout (docs/features.md); load the view "
                    "again")
    return FeatureDataError(f"feature view '{meta.name}': stored values that cannot be read")


def _decode_rows(meta: ViewMeta, features: list[str], res: list[list[bytes | None]]) -> Rows:
    """:func:`_decode` without naming a bad value (ValueError, OverflowError)."""
    n, k = len(res), len(features)
    ts_raw = [r[k] for r in res]
    found = np.fromiter((t is not None for t in ts_raw), dtype=bool, count=n)
    _strict(ts_raw)
    ts = np.fromiter((0 if t is None else int(t) for t in ts_raw), dtype=np.int64, count=n)
    types = meta.types
    num = (range(k) if "string" not in types.values()
           else [j for j, f in enumerate(features) if types.get(f) != "string"])
    cols: dict[str, np.ndarray] = {}
    null: dict[str, np.ndarray] = {}
    if num:
        every = len(num) == k
        flat = [v for r in res for v in r[:k]] if every else [r[j] for r in res for j in num]
        rows = None
        if len(flat) <= _PYTHON_PARSE:
            # a few values: Python's float (correctly rounded too: the same bits) costs less
            # than Arrow's fixed cost per call (~100 us for one entity)
            rows = np.array([_NAN if v is None else float(v) for v in flat],
                            dtype=np.float64).reshape(n, len(num))
            _strict(flat)  # (what the Arrow cast refuses, refused here too)
        if rows is None:
            import pyarrow as pa

            vals = pa.array(flat, type=pa.binary()).view(pa.string()).cast(pa.float64())
            rows = vals.to_numpy(zero_copy_only=False).reshape(n, len(num))
        block = rows.T.copy()
        isnull = np.isnan(block)
        isnull &= found
        if every:  # the matrix, in the order asked for; columns by name made when asked for
            return numeric_rows(features, block, found, ts, isnull)
        for i, j in enumerate(num):
            cols[features[j]] = block[i]
            null[features[j]] = isnull[i]
    for j, f in enumerate(features):
        if f not in cols:
            raw = [r[j] for r in res]
            col = np.empty(n, dtype=object)
            col[:] = [None if v is None else v.decode("utf-8") for v in raw]
            cols[f] = col
            null[f] = np.fromiter((v is None for v in raw), dtype=bool, count=n) & found
    return Rows(found, ts, cols, null)


def _offsets(a: Any) -> np.ndarray:
    """The value offsets of a string array, shape (n + 1,)."""
    return np.frombuffer(a.buffers()[1], dtype=np.int32)[a.offset:a.offset + len(a) + 1]


def _data(a: Any) -> memoryview:
    return memoryview(a.buffers()[2])
