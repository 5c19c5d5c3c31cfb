"""The request every transport converts to, and the target a request resolves to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from ..model import Model


@dataclass(slots=True)
class Request:
    """One scoring request in scorer terms: no protobuf, no DataFrame.

    Attributes
    ----------
    inputs : ndarray of shape (rows, n_inputs) or dict of str to ndarray of shape (rows,)
        What :meth:`scorer.Model.score_arrays` takes: one matrix in the model's input order,
        or one column per input field (strings as objects).
    rows : int
        Number of rows.
    outputs : list of str
        Names of the outputs to return, in order (a transport's selection; stages may use it
        as part of a cache key).
    parameters : dict of str to bool, int, float or str, optional
        The request's parameters (OIP ``parameters``), e.g. an experiment's unit id.
    extras : dict of str to ndarray of shape (rows,), optional
        Named columns sent for the stages, not the model (entity ids, unit ids): the inputs
        that a stage declared with ``extra_inputs``. ``inputs`` is None when a request sent
        only these (a features stage then completes it).
    response : dict of str to str, optional
        Parameters a stage adds to the answer (an experiment's ``arm``); transports return
        them with the outputs.
    """

    inputs: np.ndarray | dict[str, np.ndarray] | None
    rows: int
    outputs: list[str]
    parameters: dict[str, Any] | None = None
    extras: dict[str, np.ndarray] | None = None
    response: dict[str, str] | None = None


class Target(Protocol):
    """A model version ready to score, as a resolver returns it.

    ``name`` and ``version`` are what answered (the served name and the version number, even
    when the request named an alias or no version); ``fingerprint`` identifies the
    parameters (a cache key never outlives them).
    """

    name: str
    version: str
    model: Model

    @property
    def fingerprint(self) -> str: ...
