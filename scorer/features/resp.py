"""A compiled reader of the Redis answers to a feature lookup (#22).

Through redis-py and hiredis, the answer to one ``HGETALL`` of a 50-feature entity becomes
102 Python ``bytes`` objects, a dict, a list of floats and then the row: about 40 µs of a
one-id lookup whose round trip itself costs as much. This module reads the bytes Redis sent
(``recv_into`` one buffer) in two compiled calls instead:

- :func:`scan_replies` walks the RESP replies (RESP2 arrays or RESP3 maps of bulk strings,
  nulls) and records where the value of each asked-for field is, per entity;
- :func:`parse_numbers` turns those values into the ``(features, entities)`` block of
  doubles and the timestamps, for the values whose text it can convert exactly (below); it
  flags the others, which Python's ``float`` / ``int`` then parse one by one (as the hiredis
  path does), so the two paths accept the same texts and give the same bits.

A value is converted in compiled code when it is plain decimal text, ``-?digits[.digits]
[(e|E)[+-]digits]`` (a leading ``.`` or a trailing one allowed, as Python's ``float``
allows them). When its digits form an integer ``m <= 2^53`` and its power of ten ``p`` has
``|p| <= 22``, ``m`` and ``10^|p|`` are exact doubles and one multiplication or division of
them is correctly rounded (Clinger's fast path); otherwise the C library's ``strtod``, called
from the compiled code, converts it (correctly rounded, as Python's ``float`` is, on glibc,
musl, macOS and the Windows UCRT). Other texts (``inf``, ``nan``, a ``+``, whitespace) go to
Python, as the hiredis path reads them. Timestamps: ``-?`` and at most 18 digits, else
Python's ``int``.

Anything else in the answer (an error reply, another reply type, a malformed length) stops
the scan with a status the store turns into the same errors as the hiredis path.
"""

from __future__ import annotations

import sys

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

#: scan_replies' status: all replies read / more bytes needed / an error reply (its
#: position in ``state[2]``) / a reply that is not an answer to HGETALL or HMGET
DONE, MORE, ERROR_REPLY, UNEXPECTED = 1, 0, -1, -2
#: the exact powers of ten of doubles
_POW10 = np.array([10.0 ** i for i in range(23)])
_MAX_EXACT = 1 << 53


def _strtod() -> int:
    """The address of the C library's ``strtod``, or 0 when it cannot be found."""
    import ctypes

    try:
        lib = ctypes.CDLL(None if sys.platform != "win32" else "ucrtbase")
        return int(ctypes.cast(lib.strtod, ctypes.c_void_p).value or 0)
    except (OSError, AttributeError):
        return 0


#: the address of ``strtod`` for :func:`parse_numbers` (0: the compiled reader is not used).
#: An argument, not a global: the address differs per process, and a kernel that holds a
#: ctypes function is not cached by Numba (and a ctypes argument costs ~10 µs per call)
STRTOD = _strtod()


@intrinsic
def _call_strtod(typingctx, fn, text, end):  # pragma: no cover - numba
    """``strtod(text, end)`` through the function at address ``fn`` (all three int64)."""
    sig = types.float64(types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.DoubleType(), [i8p, i8p.as_pointer()])
        f = builder.inttoptr(args[0], fnty.as_pointer())
        return builder.call(f, [builder.inttoptr(args[1], i8p),
                                builder.inttoptr(args[2], i8p.as_pointer())])

    return sig, codegen


@njit(cache=True, nogil=True)
def _int_line(buf, i, end):
    """The integer of a RESP header line at ``buf[i:end]`` (a length or a count, ``-1`` for
    null) as (value, index after its ``\\r\\n``); index -1 when the line is incomplete, -2
    when malformed."""
    neg = False
    if i < end and buf[i] == 45:  # '-'
        neg = True
        i += 1
    v = 0
    nd = 0
    while i < end:
        c = buf[i]
        if c == 13:  # '\r'
            if i + 1 >= end:
                return 0, -1
            if buf[i + 1] != 10 or nd == 0:
                return 0, -2
            return (-v if neg else v), i + 2
        if c < 48 or c > 57 or nd >= 15 or (nd == 1 and v == 0) or (c == 48 and nd == 0
                                                                       and neg):
            return 0, -2  # (no leading zero, no "-0": as hiredis reads lengths)
        v = v * 10 + (c - 48)
        nd += 1
        i += 1
    return 0, -1


@njit(cache=True, nogil=True)
def _element(buf, i, end):
    """One element of a reply at ``buf[i:end]``: (start of its data, its length, index after
    it); length -1 for a null; index -1 incomplete, -2 not a bulk string or null."""
    if i >= end:
        return 0, 0, -1
    c = buf[i]
    if c == 95:  # '_' RESP3 null
        if i + 2 >= end:
            return 0, 0, -1
        if buf[i + 1] != 13 or buf[i + 2] != 10:
            return 0, 0, -2
        return 0, -1, i + 3
    if c != 36:  # '$'
        return 0, 0, -2
    ln, j = _int_line(buf, i + 1, end)
    if j < 0:
        return 0, 0, j
    if ln < -1:
        return 0, 0, -2
    if ln == -1:
        return 0, -1, j  # $-1: null
    if j + ln + 2 > end:
        return 0, 0, -1
    if buf[j + ln] != 13 or buf[j + ln + 1] != 10:
        return 0, 0, -2
    return j, ln, j + ln + 2


@njit(cache=True, nogil=True)
def _same(buf, a, ln, names, name_off, f):
    """Whether ``buf[a:a + ln]`` is name ``f`` of ``names``."""
    s = name_off[f]
    if name_off[f + 1] - s != ln:
        return False
    for t in range(ln):
        if buf[a + t] != names[s + t]:
            return False
    return True


@njit(cache=True, nogil=True)
def scan_replies(buf, end, state, whole, names, name_off, spans):  # pragma: no cover - numba
    """Scan the replies in ``buf[:end]`` from where ``state`` says, recording value spans.

    Parameters
    ----------
    buf : uint8 ndarray
        The bytes received (``end`` of them so far).
    state : int64 ndarray of shape (3,)
        Replies complete so far and the position of the next one (both 0 at first; updated,
        so a later call resumes there once more bytes came); the position of an error reply.
    whole : bool
        The replies answer ``HGETALL`` (field, value pairs, matched to ``names``); else
        ``HMGET`` of ``names`` in order.
    names : uint8 ndarray; name_off : int64 ndarray of shape (k + 1,)
        The k asked-for field names (the features, then ``_ts``) one after the other.
    spans : int64 ndarray of shape (n, k, 2)
        Written: (start, length) of field ``f``'s value in reply ``r``; start -1 where the
        reply has no such field (or it is null).

    Returns
    -------
    int
        :data:`DONE` when the n replies are complete, :data:`MORE` when more bytes are
        needed, :data:`ERROR_REPLY` or :data:`UNEXPECTED`.
    """
    n = spans.shape[0]
    k = spans.shape[1]
    r = state[0]
    i = state[1]
    while r < n:
        if i >= end:
            return MORE
        for f in range(k):
            spans[r, f, 0] = -1
            spans[r, f, 1] = 0
        c = buf[i]
        if c == 45:  # '-': an error reply (WRONGTYPE), once its whole line is here
            for j in range(i + 1, end - 1):
                if buf[j] == 13 and buf[j + 1] == 10:
                    state[2] = i
                    return ERROR_REPLY
            return MORE
        if c == 95:  # RESP3 null
            if i + 2 >= end:
                return MORE
            if buf[i + 1] != 13 or buf[i + 2] != 10:
                return UNEXPECTED
            r += 1
            i += 3
            state[0] = r
            state[1] = i
            continue
        if c != 42 and c != 37:  # '*' array, '%' map
            return UNEXPECTED
        count, j = _int_line(buf, i + 1, end)
        if j == -1:
            return MORE
        if j < 0:
            return UNEXPECTED
        if count < -1:
            return UNEXPECTED
        if count == -1:  # *-1: a null array
            count = 0
        if c == 37:
            count *= 2
        if whole:
            if count % 2:
                return UNEXPECTED
            hint = 0
            for _ in range(count // 2):
                a, ln, j = _element(buf, j, end)
                if j == -1:
                    return MORE
                if j < 0 or ln < 0:
                    return UNEXPECTED
                va, vl, j = _element(buf, j, end)
                if j == -1:
                    return MORE
                if j < 0:
                    return UNEXPECTED
                # fields come back in the order they were written, mostly the order asked
                # for: try the next one first
                f = -1
                if hint < k and _same(buf, a, ln, names, name_off, hint):
                    f = hint
                else:
                    for g in range(k):
                        if _same(buf, a, ln, names, name_off, g):
                            f = g
                            break
                if f >= 0 and vl >= 0:
                    spans[r, f, 0] = va
                    spans[r, f, 1] = vl
                    hint = f + 1
        else:
            if count != k and count != 0:
                return UNEXPECTED
            for f in range(count):
                va, vl, j = _element(buf, j, end)
                if j == -1:
                    return MORE
                if j < 0:
                    return UNEXPECTED
                if vl >= 0:
                    spans[r, f, 0] = va
                    spans[r, f, 1] = vl
        r += 1
        i = j
        state[0] = r
        state[1] = i
    return DONE


@njit(cache=True, nogil=True, inline="always")
def _digit(c):
    return 48 <= c <= 57


@njit(cache=True, nogil=True, inline="always")
def _mantissa(buf, i, e, m, nd, exact):
    """The decimal digits at ``buf[i:e]`` appended to the mantissa ``m`` of ``nd``
    significant digits: (index after them, m, nd, exact, digits read). Leading zeros are not
    significant; past 18 significant digits (what int64 holds) ``m`` stops and ``exact`` is
    False."""
    start = i
    while i < e and _digit(buf[i]):
        d = buf[i] - 48
        if m != 0 or d != 0:
            if nd < 18:
                m = m * 10 + d
            else:
                exact = False
            nd += 1
        i += 1
    return i, m, nd, exact, i - start


@njit(cache=True, nogil=True)
def _double(buf, a, ln, strtod, endp):
    """(value, True) when ``buf[a:a + ln]`` is plain decimal text (module docstring);
    (0.0, False) otherwise. Exact by Clinger's fast path where it applies, else by the C
    library's ``strtod`` (correctly rounded, as Python's ``float``), whose end pointer must
    then be the text's end (it is not where LC_NUMERIC has another decimal point)."""
    i = a
    e = a + ln
    neg = False
    if i < e and buf[i] == 45:
        neg = True
        i += 1
    i, m, nd, exact, n_int = _mantissa(buf, i, e, 0, 0, True)
    p = 0
    n_frac = 0
    if i < e and buf[i] == 46:  # '.'
        i, m, nd, exact, n_frac = _mantissa(buf, i + 1, e, m, nd, exact)
        p = -n_frac
    if n_int + n_frac == 0:
        return 0.0, False
    if i < e and (buf[i] == 101 or buf[i] == 69):  # 'e', 'E'
        i += 1
        eneg = False
        if i < e and (buf[i] == 43 or buf[i] == 45):
            eneg = buf[i] == 45
            i += 1
        ev = 0
        ed = 0
        while i < e and _digit(buf[i]):
            if ed < 6:
                ev = ev * 10 + (buf[i] - 48)
            else:
                exact = False
            ed += 1
            i += 1
        if ed == 0:
            return 0.0, False
        p += -ev if eneg else ev
    if i != e:
        return 0.0, False
    if exact and m == 0:
        return (-0.0 if neg else 0.0), True
    if exact and m <= _MAX_EXACT and -22 <= p <= 22:
        v = float(m)
        if p > 0:
            v *= _POW10[p]
        elif p < 0:
            v /= _POW10[-p]
        return (-v if neg else v), True
    start = buf.ctypes.data + a
    v = _call_strtod(strtod, start, endp.ctypes.data)
    if endp[0] != start + ln:
        return 0.0, False
    return v, True


@njit(cache=True, nogil=True)
def _fast_int(buf, a, ln):
    """(value, True) when ``buf[a:a + ln]`` is ``-?`` and 1 to 18 digits."""
    i = a
    e = a + ln
    neg = False
    if i < e and buf[i] == 45:
        neg = True
        i += 1
    if i == e or e - i > 18:
        return 0, False
    v = 0
    while i < e:
        if not _digit(buf[i]):
            return 0, False
        v = v * 10 + (buf[i] - 48)
        i += 1
    return (-v if neg else v), True


@njit(cache=True, nogil=True)
def parse_numbers(buf, spans, block, null, ts, found, slow, strtod,
                  endp):  # pragma: no cover - numba
    """The values of the spans :func:`scan_replies` found, all features numeric.

    Parameters
    ----------
    buf : uint8 ndarray
    spans : int64 ndarray of shape (n, k + 1, 2)
        The k features' spans, then ``_ts``'s.
    block : float64 ndarray of shape (k, n)
        Written: feature ``f`` of entity ``r`` at ``[f, r]``; NaN where absent (null) or
        flagged in ``slow``.
    null : bool ndarray of shape (k, n)
        Written: True where entity ``r`` exists and its feature ``f`` is NaN (absent, or a
        text that reads as NaN; undefined where flagged in ``slow``).
    ts : int64 ndarray of shape (n,); found : bool ndarray of shape (n,)
        Written: each entity's timestamp (0 when absent) and whether it has one (the row
        exists).
    slow : bool ndarray of shape (n, k + 1)
        Written: True where Python must parse the value (features, then the timestamp).
    strtod : int
        The address of the C library's ``strtod`` (:data:`STRTOD`).
    endp : int64 ndarray of shape (1,)
        Where ``strtod`` writes its end pointer.

    Returns
    -------
    int
        The number of values flagged in ``slow``.
    """
    n = spans.shape[0]
    k = spans.shape[1] - 1
    flagged = 0
    for r in range(n):
        a = spans[r, k, 0]
        slow[r, k] = False
        found[r] = a >= 0
        ts[r] = 0
        if a >= 0:
            t, ok = _fast_int(buf, a, spans[r, k, 1])
            if ok:
                ts[r] = t
            else:
                slow[r, k] = True
                flagged += 1
        for f in range(k):
            a = spans[r, f, 0]
            slow[r, f] = False
            if a < 0:
                block[f, r] = np.nan
                null[f, r] = found[r]
                continue
            v, ok = _double(buf, a, spans[r, f, 1], strtod, endp)
            if not ok:
                slow[r, f] = True
                flagged += 1
                v = np.nan
            block[f, r] = v
            null[f, r] = found[r] and v != v
    return flagged


# --- references: what hiredis and Python make of the same bytes -----------------------------
def scan_reference(data: bytes, n: int, whole: bool, names: list[bytes],
                   ) -> list[list[bytes | None]]:
    """The values of ``names`` in each of the ``n`` replies of ``data``, read by hiredis (the
    path :func:`scan_replies` replaces): per reply, per name, the bytes or None."""
    import hiredis

    reader = hiredis.Reader()
    reader.feed(data)
    out = []
    for _ in range(n):
        rep = reader.gets()
        if rep is False:
            raise ValueError("incomplete")
        if not rep:  # an empty array or map, a null
            out.append([None] * len(names))
        elif whole:
            d = rep if isinstance(rep, dict) else dict(zip(rep[::2], rep[1::2], strict=True))
            out.append([d.get(nm) for nm in names])
        else:
            out.append(list(rep))
    return out


# --- compiling ----------------------------------------------------------------------------
def _samples() -> list[tuple[object, tuple]]:
    """Each kernel with arguments of the types the store passes (array layouts included)."""
    buf = np.frombuffer(b"*2\r\n$3\r\n_ts\r\n$1\r\n7\r\n", dtype=np.uint8).copy()
    names = np.frombuffer(b"_ts", dtype=np.uint8).copy()
    spans = np.empty((1, 1, 2), dtype=np.int64)
    scan = (buf, len(buf), np.zeros(3, dtype=np.int64), True, names,
            np.array([0, 3], dtype=np.int64), spans)
    parse = (buf, spans, np.empty((0, 1)), np.empty((0, 1), dtype=bool),
             np.empty(1, dtype=np.int64),
             np.empty(1, dtype=bool), np.empty((1, 1), dtype=bool), STRTOD,
             np.zeros(1, dtype=np.int64))
    return [(scan_replies, scan), (parse_numbers, parse)]


#: (scan_replies, parse_numbers) as the store calls them, once compiled: their entry points
#: for the store's argument types (no type resolution per call: ~4 µs of a one-id read)
KERNELS: list = []
_PENDING: list[int] = []


def _check() -> None:
    """Both kernels are compiled: check them on a sample, then let reads take them."""
    from ..ops import entry_point

    if KERNELS:
        return
    (_, scan), (_, parse) = _samples()
    fns = [entry_point(scan_replies, scan) or scan_replies,
           entry_point(parse_numbers, parse) or parse_numbers]
    if fns[0](*scan) != DONE or fns[1](*parse) != 0 or parse[4][0] != 7:
        raise RuntimeError("the compiled reader of Redis answers misread a sample")
    KERNELS.extend(fns)


def ready() -> bool:
    """True when reads can take the compiled reader (:data:`KERNELS`); the first call has it
    loaded from Numba's cache or compiled on the background compile thread (reads go through
    hiredis meanwhile, with the same results)."""
    if KERNELS:
        return True
    if not _PENDING and STRTOD:
        from ..ops import compile_later

        _PENDING.append(0)

        def one_done() -> None:
            _PENDING[0] += 1
            if _PENDING[0] == 2:
                _check()

        for kernel, args in _samples():
            compile_later(kernel, args, one_done)
    return False


def warm() -> None:
    """Compile the reader now (``tablescore warmup``, tests)."""
    from ..ops import compile_now

    if not STRTOD:
        return
    for kernel, args in _samples():
        compile_now(kernel, args)
    _check()
