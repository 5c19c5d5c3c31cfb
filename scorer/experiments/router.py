"""The route stage of experiments: which version answers a unit's request.

Experiments are read from each model's ``config.json`` (see :mod:`.config`) by a background
thread every ``refresh_s`` seconds, so a request only looks a dict up. A request's unit id comes
from a request parameter named as the experiment's ``unit``, or from an input column of that
name (declared with :meth:`ExperimentRouter.extra_inputs`, so transports hand it over).
"""

from __future__ import annotations

import json
import logging
import threading
from bisect import bisect_right
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..errors import InputError, TablescoreError
from .assign import BUCKETS, salt_state, text_bucket, unit_text
from .config import Arm, Experiment, parse_experiment

log = logging.getLogger("tablescore.experiments")

#: the permanent control group's salt unless ``--control-group-salt`` says otherwise
DEFAULT_CONTROL_SALT = "tablescore-permanent-control-group"
_NONE: frozenset[str] = frozenset()
_MAX_CONFIG_BYTES = 64 * 1024


class ExperimentRouter:
    """Routes requests of models with an experiment to the arm of their unit.

    Parameters
    ----------
    repository : Repository or RegistryReplica
        Where versions are resolved (a version or an alias) and whose ``root`` holds the
        models' ``config.json``.
    control_fraction : float
        Share of units in the permanent control group (0: none).
    control_salt : str
        The control group's own salt (the same on every replica).
    refresh_s : float
        Seconds between re-reads of the models' ``config.json``.
    """

    def __init__(self, repository: Any, *, control_fraction: float = 0.0,
                 control_salt: str = DEFAULT_CONTROL_SALT, refresh_s: float = 1.0) -> None:
        if not 0.0 <= control_fraction < 1.0:
            raise ValueError("the control group fraction must be in [0, 1)")
        self.repository = repository
        self.root = Path(repository.root)
        self.control_fraction = control_fraction
        self.control_salt = control_salt
        self._control_state = salt_state(control_salt)
        #: buckets below this are the permanent control group (assign.in_control_group)
        self._control_n = round(control_fraction * BUCKETS)
        self.refresh_s = refresh_s
        #: model -> its experiment (models without one are absent)
        self.experiments: dict[str, Experiment] = {}
        #: model -> why its experiment config was refused
        self.errors: dict[str, str] = {}
        self._stamps: dict[str, tuple[int, int]] = {}
        self._compatible: dict[tuple[str, str], bool] = {}
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str, str], int] = defaultdict(int)
        self._plans: dict[str, tuple[Experiment, tuple[tuple[str, str, str], ...],
                                     tuple[str, str, str]]] = {}
        self._stop = threading.Event()
        self.refresh()
        self._thread = threading.Thread(target=self._watch, name="tablescore-experiments",
                                        daemon=True)
        self._thread.start()

    # --- configuration ------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.refresh()
            except Exception:  # one bad file must not stop the watcher
                log.exception("reading experiment configs failed")

    def refresh(self) -> None:
        """Re-read the ``config.json`` of every model whose file changed."""
        table = dict(self.experiments)
        seen = set()
        try:
            entries = list(self.root.iterdir())
        except OSError:
            entries = []
        for d in entries:
            name = d.name
            if name.startswith("."):
                continue
            seen.add(name)
            path = d / "config.json"
            try:
                st = path.stat()
            except OSError:
                table.pop(name, None)
                self._stamps.pop(name, None)
                continue
            stamp = (st.st_mtime_ns, st.st_size)
            if self._stamps.get(name) == stamp:
                continue
            self._stamps[name] = stamp
            try:
                if st.st_size > _MAX_CONFIG_BYTES:
                    raise ValueError(f"config.json is larger than {_MAX_CONFIG_BYTES} bytes")
                cfg = json.loads(path.read_text(encoding="utf-8"))
                d_exp = cfg.get("experiment") if isinstance(cfg, dict) else None
                exp = None if d_exp is None else parse_experiment(d_exp)
            except (OSError, ValueError, RecursionError) as exc:
                # keep what ran before: a typo must not end an experiment silently
                self.errors[name] = str(exc)
                log.warning("experiment config refused; keeping the previous one", extra={
                    "event": "experiment_config_refused", "model": name, "error": str(exc)})
                continue
            self.errors.pop(name, None)
            before = table.get(name)
            if exp is None:
                table.pop(name, None)
            else:
                table[name] = exp
            if before != exp:
                _warn_shrinking_arm_gains(name, before, exp)
                log.info("experiment configured", extra={
                    "event": "experiment_config", "model": name,
                    "experiment": None if exp is None else exp.name})
        for name in list(table):
            if name not in seen:
                del table[name]
        # the route stage's view of each: the experiment and its counters' keys, built here
        # once rather than per request; one reference swap: requests see old or new, never half
        self._plans = {m: (e, tuple((m, e.name, a.name) for a in e.arms), (m, e.name, "none"))
                       for m, e in table.items()}
        self.experiments = table

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    # --- the stage ----------------------------------------------------------------------------
    def extra_inputs(self, target: Any) -> frozenset[str]:
        exp = self.experiments.get(target.name)
        return _NONE if exp is None else exp.units

    def unit_of(self, exp: Experiment, request: Any) -> str | None:
        """The request's unit id as text, or None when it has none."""
        params = request.parameters
        value = params.get(exp.unit) if params else None
        if value is None and request.extras:
            col = request.extras.get(exp.unit)
            if col is not None and len(col):
                value = col[0]
                if len(col) > 1 and any(v != value for v in col[1:]):
                    raise InputError(f"input '{exp.unit}' holds several units: one unit per "
                                     f"request (experiment '{exp.name}')")
        if value is None:
            return None
        try:
            return unit_text(value)
        except ValueError as exc:
            raise InputError(f"unit id '{exp.unit}': {exc}") from None

    def assign(self, exp: Experiment, unit: str) -> tuple[Arm, bool]:
        """The arm of ``unit`` (text, as :meth:`unit_of` gives it) and whether it is in the
        permanent control group."""
        i = self._arm_index(exp, unit)
        return (exp.arms[exp.control], True) if i < 0 else (exp.arms[i], False)

    def _arm_index(self, exp: Experiment, unit: str) -> int:
        """Index of ``unit``'s arm; -1 for a unit of the permanent control group."""
        if self.control_fraction and text_bucket(self._control_state, unit) < self._control_n:
            return -1
        return bisect_right(exp.upper, text_bucket(exp.state, unit))

    def route(self, target: Any, request: Any) -> Any:
        # (the request path of every routed request: kept in one function, with the
        # experiment's derived state (config.Experiment) and counter keys prebuilt)
        plan = self._plans.get(target.name)
        if plan is None:
            return target
        exp, keys, none_key = plan
        unit = self.unit_of(exp, request)
        if unit is None:  # no unit id: the default version, counted
            with self._lock:
                self.counts[none_key] += 1
            return target
        if self.control_fraction and text_bucket(self._control_state, unit) < self._control_n:
            i = exp.control
            request.response = exp.holdout_response  # (shared, prebuilt: never mutated)
        else:
            h = exp.state.copy()  # the salt's hash state: only the unit is hashed here
            h.update(unit.encode("utf-8"))
            i = bisect_right(exp.upper, int.from_bytes(h.digest()[:8], "big") % BUCKETS)
            request.response = exp.responses[i]
        arm = exp.arms[i]
        routed = self.repository.resolve(target.name, arm.version)
        if routed is not target and not self._same_inputs(target, routed):
            request.response = None
            raise TablescoreError(  # FAILED_PRECONDITION: the configuration is wrong
                f"experiment '{exp.name}': arm '{arm.name}' (version {routed.version}) takes "
                f"other inputs than version {target.version}; arms must share their inputs")
        with self._lock:
            self.counts[keys[i]] += 1
        return routed

    def _same_inputs(self, a: Any, b: Any) -> bool:
        key = (a.fingerprint, b.fingerprint)  # stable per version, unlike an object's id
        same = self._compatible.get(key)
        if same is None:
            same = a.model.input_names == b.model.input_names
            if len(self._compatible) > 4096:
                self._compatible.clear()
            self._compatible[key] = same
        return same

    def collector(self) -> Any:
        """``tablescore_experiment_requests_total{model, experiment, arm}`` (arm ``none``: no
        unit id, answered by the default version)."""
        return _Series(self)


def _warn_shrinking_arm_gains(model: str, before: Experiment | None,
                              after: Experiment | None) -> None:
    """Log when a re-weighting moves buckets into an arm that shrank (possible with three or
    more arms, since ranges are consecutive: docs/experiments.md)."""
    if before is None or after is None or before.salt != after.salt:
        return
    old = _ranges(before)
    for arm, (lo, hi) in _ranges(after).items():
        if arm not in old:
            continue
        olo, ohi = old[arm]
        if hi - lo < ohi - olo and (lo < olo or hi > ohi):
            log.warning("re-weighting moves units into a shrinking arm", extra={
                "event": "experiment_reweight_gain", "model": model, "arm": arm,
                "experiment": after.name})


def _ranges(exp: Experiment) -> dict[str, tuple[int, int]]:
    lo, out = 0, {}
    for a, hi in zip(exp.arms, exp.upper, strict=True):
        out[a.name] = (lo, int(hi))
        lo = int(hi)
    return out


class _Series:
    def __init__(self, router: ExperimentRouter) -> None:
        self.router = router

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        c = CounterMetricFamily("tablescore_experiment_requests",
                                "Requests of models with an experiment, by the arm that "
                                "answered (none: no unit id, the default version answered)",
                                labels=["model", "experiment", "arm"])
        with self.router._lock:
            items = sorted(self.router.counts.items())
        for key, n in items:
            c.add_metric(list(key), n)
        yield c
