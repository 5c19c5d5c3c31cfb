"""The features stage's view metadata: what it caches, and for how long."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from scorer.features import FeatureStore
from scorer.features.loader import load
from scorer.features.stage import FeatureStage


class _Counting:
    """A store that counts its ``view`` calls."""

    def __init__(self, store: FeatureStore) -> None:
        self.store, self.calls = store, 0
        self.url = store.url

    def view(self, name: str):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.store.view(name)


def test_a_view_the_store_does_not_hold_is_asked_for_again_after_retry_after(
        store: FeatureStore, view_name: str, tmp_path: Path) -> None:
    counting = _Counting(store)
    stage = FeatureStage(counting, {"m": {"view": view_name}},  # type: ignore[arg-type]
                         retry_after=0.2)
    for _ in range(50):  # requests to a model bound to an absent view: one store call
        assert stage.view(view_name) is None
    assert counting.calls == 1
    pd.DataFrame({"id": [1, 2], "x": [0.5, 1.5]}).to_parquet(tmp_path / "v.parquet")
    load(store, tmp_path / "v.parquet", view=view_name, entity="id")
    assert stage.view(view_name) is None  # (still within retry_after)
    time.sleep(0.25)
    meta = stage.view(view_name)
    assert meta is not None and meta.entity == "id" and counting.calls == 2
    for _ in range(10):  # a view it holds: cached for meta_ttl
        assert stage.view(view_name) is meta
    assert counting.calls == 2
