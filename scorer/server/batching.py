"""Adaptive batching: concurrent small requests to one model version share one kernel call.

Scoring a row costs tens of nanoseconds inside a kernel but microseconds around it (input
checks, workspace allocation, dispatch). When many clients send one row at a time, merging the
requests that arrive within a short, bounded delay amortises that fixed cost. Off by default
(``--batch-delay-us``): it trades a little latency per request for throughput under load.

How a round works (no thread of its own): the first request to arrive becomes the round's
*leader*. It waits only for requests already in the server: the transport *announces* each
request as it arrives, before decoding it, and the leader waits while announced requests are
still being decoded, until ``max_rows`` rows are pending or ``max_delay_s`` has passed since
it arrived. A lone request therefore never waits. The leader then takes the pending requests
(up to ``max_rows`` rows, always at least its own), scores them as one batch and hands every
request its own slice of the outputs. Requests that arrive while it scores wait for the next
round, whose leader is the oldest of them. A request never waits longer than one delay plus
the scoring of the batch ahead of it.

Requests are merged only with requests of the same input form (one 2-D tensor of one dtype
and width, or the same named columns). When a merged batch is refused (a bad value in one
request), each of its requests is scored on its own, so the error reaches only the request
that caused it, with row numbers in that request's terms (the batch is bisected: the other
requests still share kernel calls).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Inputs = np.ndarray | dict[str, np.ndarray]
ScoreFn = Callable[[Inputs], dict[str, np.ndarray]]


@dataclass(eq=False)
class _Item:
    X: Inputs
    rows: int
    arrived: float
    done: threading.Event = field(default_factory=threading.Event)
    #: set instead of a result: this request leads the next round
    lead: bool = False
    result: dict[str, np.ndarray] | None = None
    error: BaseException | None = None
    #: requests scored in the kernel call that scored this one (1: not merged)
    batch_requests: int = 1
    #: whether this request's kernel call is counted here (once per call, for statistics)
    executed: bool = False


@dataclass(frozen=True)
class BatchResult:
    """What :meth:`Batcher.submit` returns for one request."""

    #: output name -> 1-D array, this request's rows only
    arrays: dict[str, np.ndarray]
    #: how many requests the kernel call that scored this one merged
    batch_requests: int
    #: True for exactly one request of each kernel call (count executions once)
    executed: bool


def _form(X: Inputs) -> tuple[Any, ...]:
    """Requests merge only when their inputs concatenate into one valid input."""
    if isinstance(X, np.ndarray):
        return ("matrix", X.dtype.str, X.shape[1:])
    return ("columns", tuple((k, np.asarray(v).dtype.str) for k, v in X.items()))


def _concat(items: list[_Item]) -> Inputs:
    first = items[0].X
    if isinstance(first, np.ndarray):
        return np.concatenate([it.X for it in items], axis=0)
    return {k: np.concatenate([np.asarray(it.X[k]) for it in items]) for k in first}


class Batcher:
    """Merges concurrent requests to one model version (see the module docstring).

    Parameters
    ----------
    score : callable
        ``score(X) -> {output: array of n_rows}``; ``X`` a 2-D array (n_rows, n_features) or
        a dict of 1-D columns, as :meth:`scorer.Model.score_arrays` takes.
    max_rows : int
        A round closes as soon as this many rows are pending; larger requests are scored on
        their own without waiting.
    max_delay_s : float
        Longest time a round's first request waits for others.
    """

    def __init__(self, score: ScoreFn, *, max_rows: int, max_delay_s: float) -> None:
        if max_rows <= 0 or max_delay_s <= 0:
            raise ValueError("batching needs max_rows > 0 and max_delay_s > 0")
        self._score = score
        self.max_rows = max_rows
        self.max_delay_s = max_delay_s
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[_Item] = []
        self._pending_rows = 0
        self._leading = False
        #: announced requests not yet submitted (being decoded)
        self._incoming = 0

    def announce(self) -> None:
        """A request for this version has arrived: a leader may wait for it. Follow with
        :meth:`submit` (``announced=True``) or, if the request fails before, :meth:`withdraw`."""
        with self._cond:
            self._incoming += 1

    def withdraw(self) -> None:
        """An announced request will not be submitted (e.g. it could not be decoded)."""
        with self._cond:
            self._incoming -= 1
            self._cond.notify_all()

    def submit(self, X: Inputs, rows: int, *, announced: bool = False) -> BatchResult:
        """Score ``X`` (``rows`` rows), possibly merged with concurrent requests.

        Raises whatever scoring ``X`` on its own raises.
        """
        if rows >= self.max_rows:  # nothing to gain from waiting
            if announced:
                self.withdraw()
            return BatchResult(self._score(X), 1, True)
        item = _Item(X, rows, time.monotonic())
        with self._cond:
            if announced:
                self._incoming -= 1
                self._cond.notify_all()
            self._pending.append(item)
            self._pending_rows += rows
            if self._leading:
                if self._pending_rows >= self.max_rows:
                    self._cond.notify_all()
            else:
                self._leading = True
                item.lead = True
        while True:
            if item.lead:
                item.lead = False
                self._lead(item)
            else:
                item.done.wait()
                if item.lead:  # promoted: lead the next round
                    item.done.clear()
                    continue
            if item.error is not None:
                raise item.error
            assert item.result is not None
            return BatchResult(item.result, item.batch_requests, item.executed)

    def _lead(self, me: _Item) -> None:
        deadline = me.arrived + self.max_delay_s
        with self._cond:
            # wait for requests already in the server (announced, being decoded), not for
            # requests that may or may not come
            while self._pending_rows < self.max_rows and self._incoming > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            # take the oldest requests, up to max_rows (always at least the first)
            take, rows = [], 0
            while self._pending and (not take or rows + self._pending[0].rows
                                     <= self.max_rows):
                it = self._pending.pop(0)
                take.append(it)
                rows += it.rows
            self._pending_rows -= rows
            if self._pending:  # the oldest waiting request leads the next round
                nxt = self._pending[0]
                nxt.lead = True
                nxt.done.set()
            else:
                self._leading = False
        self._run(take)

    def _run(self, items: list[_Item]) -> None:
        groups: dict[tuple[Any, ...], list[_Item]] = {}
        for it in items:
            groups.setdefault(_form(it.X), []).append(it)
        try:
            for group in groups.values():
                self._run_group(group)
        finally:
            for it in items:
                if it.result is None and it.error is None:  # pragma: no cover  (defensive)
                    it.error = RuntimeError("batched request was not scored")
                it.done.set()

    def _run_group(self, group: list[_Item]) -> None:
        if len(group) == 1:
            self._alone(group[0])
            return
        try:
            out = self._score(_concat(group))
        except Exception:
            # one request's bad value must not fail the others, and its error must name rows
            # in its own terms: bisect, so the good requests still share calls and the bad
            # one is finally scored on its own
            half = len(group) // 2
            self._run_group(group[:half])
            self._run_group(group[half:])
            return
        start = 0
        for k, it in enumerate(group):
            stop = start + it.rows
            it.result = {name: a[start:stop] for name, a in out.items()}
            it.batch_requests = len(group)
            it.executed = k == 0
            start = stop

    def _alone(self, it: _Item) -> None:
        try:
            it.result = self._score(it.X)
            it.executed = True
        except Exception as exc:  # delivered to the request's own thread
            it.error = exc
