"""LazyAdam is Adam on the rows a batch touches, and the MLflow setup's defaults."""
from __future__ import annotations

import pytest
import torch

from training.learning.optim import LazyAdam


def test_lazy_adam_equals_adam_when_every_row_is_touched():
    torch.manual_seed(0)
    dense = torch.nn.Embedding(6, 3)
    sparse = torch.nn.Embedding(6, 3, sparse=True)
    sparse.weight.data.copy_(dense.weight.data)
    a = torch.optim.Adam(dense.parameters(), lr=0.05, weight_decay=1e-3)
    b = LazyAdam(sparse.parameters(), lr=0.05, weight_decay=1e-3)
    for step in range(5):
        ids = torch.tensor([0, 1, 2, 3, 4, 5, 2, 2])            # all rows, some repeated
        y = torch.arange(8, dtype=torch.float32) / 8
        for emb, opt in ((dense, a), (sparse, b)):
            opt.zero_grad()
            ((emb(ids).sum(1) - y) ** 2).sum().backward()
            opt.step()
    torch.testing.assert_close(sparse.weight.data, dense.weight.data, rtol=1e-5, atol=1e-6)


def test_lazy_adam_leaves_untouched_rows_alone():
    emb = torch.nn.Embedding(5, 2, sparse=True)
    before = emb.weight.data.clone()
    opt = LazyAdam(emb.parameters(), lr=0.1, weight_decay=0.1)
    emb(torch.tensor([1, 3])).sum().backward()
    opt.step()
    changed = (emb.weight.data != before).any(1).tolist()
    assert changed == [False, True, False, True, False]


def test_default_store_is_sqlite_under_mlruns(repo, tmp_path, monkeypatch):
    """No MLFLOW_TRACKING_URI: sqlite:///<repo>/mlruns/mlflow.db with artifacts beside it;
    the env var (what `mlflow run` and the Makefile set) wins."""
    import mlflow
    from training.registry import tracking
    assert tracking.DEFAULT_TRACKING_URI == f"sqlite:///{repo / 'mlruns' / 'mlflow.db'}"
    store = tmp_path / "store" / "mlflow.db"
    monkeypatch.setattr(tracking, "DEFAULT_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    assert tracking.setup("botify-test") == f"sqlite:///{store}"
    exp = mlflow.get_experiment_by_name("botify-test")
    assert exp.artifact_location == (store.parent / "artifacts").as_uri()
    other = tmp_path / "other.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    assert tracking.setup() == f"sqlite:///{other}" == mlflow.get_tracking_uri()


def test_entry_point_flags_refuse_a_misspelt_value():
    """MLproject passes booleans as strings: a typo must fail, not silently mean false."""
    import argparse

    from training.registry.tracking import flag
    assert flag("true") and flag("True") and flag("1") and not flag("false") and not flag("")
    with pytest.raises(argparse.ArgumentTypeError, match="treu"):
        flag("treu")
