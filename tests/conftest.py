import os
from pathlib import Path

import pytest
import torch

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT.parent / "shared" / "datasets"


def real_data_root():
    """The shared copy of the real datasets, else $GNNSCALE_DATA."""
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    if os.environ.get("GNNSCALE_DATA"):
        return Path(os.environ["GNNSCALE_DATA"])
    return None


@pytest.fixture(scope="session")
def data_root():
    root = real_data_root()
    if root is None:
        pytest.fail("the real datasets are missing: expected ../shared/datasets or $GNNSCALE_DATA")
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # ogb's processed files go to a cache; keep the tests' cache out of the user's home.
    monkeypatch.setenv("GNNSCALE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
