"""Shutting down while the exposure sink hangs: every record is written or counted as
dropped, once."""

from __future__ import annotations

import threading
import time

import numpy as np

from scorer.experiments.config import parse_experiment
from scorer.experiments.exposures import ExposureLog
from scorer.pipeline import Request


def test_a_batch_in_flight_at_a_close_timeout_is_counted_once() -> None:
    release, entered = threading.Event(), threading.Event()

    class Hanging:
        name = "hanging"

        def write(self, rows: list) -> int:
            entered.set()
            release.wait(30)
            return 0

        def close(self) -> None:
            pass

    exp = parse_experiment({"name": "e", "unit": "u", "salt": "s",
                            "arms": [{"name": "control", "version": "1", "weight": 1}]})

    class Router:
        def __init__(self) -> None:
            self.experiments = {"m": exp}

        @staticmethod
        def unit_of(e: object, r: object) -> str:
            return "1"

    class Target:
        name, version = "m", "1"

    log = ExposureLog(Hanging(), Router(), flush_s=0.05, close_timeout=0.5)

    def record(n: int) -> None:
        for _ in range(n):
            log.record(Target, Request(np.ones((1, 1)), 1, ["y"],
                                       response=exp.responses[0]), {"y": np.array([1.0])})

    record(1000)
    assert entered.wait(10)  # the writer holds the 1000 and is inside write
    record(500)
    log.close()  # gives up after 0.5 s
    assert (log.written, log.dropped) == (0, 1500)  # nothing unaccounted
    release.set()  # the hung write ends after all: those 1000 were written
    log._thread.join(10)
    deadline = time.monotonic() + 5
    while log.written != 1000 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (log.written, log.dropped) == (1000, 500)
