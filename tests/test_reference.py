"""Parity with the upstream reference implementations: the definition of a correct network."""
import json

import numpy as np
import pytest

from vsrdeploy.evaluate.reference import checkpoint_files, run_case
from tests.conftest import VECTORS

TOLERANCE = 1e-4


def _cases():
    index = VECTORS / "index.json"
    if not index.exists():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"no reference vectors at {VECTORS}"))]
    out = []
    for case in json.loads(index.read_text())["cases"]:
        for kind, filename in checkpoint_files(case).items():
            out.append(pytest.param(case, filename, id=f"{case['name']}-{kind}"))
    return out


@pytest.mark.parametrize("case,filename", _cases())
def test_matches_upstream_output(vectors, case, filename):
    out, expected = run_case(str(vectors), case, filename)
    assert out.shape == tuple(case.get("output_shape", expected.shape))
    err = float(np.abs(out - expected).max())
    assert err <= TOLERANCE, f"{case['name']}: max abs error {err:.3e} > {TOLERANCE}"
