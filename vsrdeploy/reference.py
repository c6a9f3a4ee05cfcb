"""Run the networks on upstream reference vectors (``index.json`` + checkpoints + ``.io.npz``)."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .errors import VSRDeployError

#: config values a checkpoint cannot tell; taken from the case's upstream config
NOT_IN_WEIGHTS = ("keyframe_stride", "dynamic_refine_thres")


@dataclass
class ReferenceResult:
    case: str
    checkpoint: str
    arch: str
    max_error: float
    seconds: float


def load_index(vectors: str) -> list[dict]:
    path = os.path.join(vectors, "index.json")
    if not os.path.exists(path):
        raise VSRDeployError(f"no index.json in {vectors}")
    with open(path) as f:
        return json.load(f)["cases"]


def checkpoint_files(case: dict) -> dict[str, str]:
    """Checkpoint kind (mmagic_checkpoint, basicsr_checkpoint, state_dict) -> file name."""
    return {k: v for k, v in case["files"].items()
            if k in ("mmagic_checkpoint", "basicsr_checkpoint", "state_dict")}


def run_case(vectors: str, case: dict, filename: str):
    """Load the case's checkpoint and return (output, expected) as numpy arrays."""
    overrides = {k: v for k, v in case["config"].items() if k in NOT_IN_WEIGHTS}
    model = load_checkpoint(os.path.join(vectors, filename), arch=case["arch"], **overrides)
    io = np.load(os.path.join(vectors, case["files"]["io"]))
    with torch.no_grad():
        if case["arch"] == "spynet":
            out = model(torch.from_numpy(io["ref"]), torch.from_numpy(io["supp"]))
            return out.numpy(), io["flow"]
        return model(torch.from_numpy(io["lrs"])).numpy(), io["out"]


def iter_reference_results(vectors: str, skip_arches=("psrt_recurrent",)) -> Iterator[ReferenceResult]:
    from .models import list_models

    for case in load_index(vectors):
        if case["arch"] in skip_arches or case["arch"] not in list_models():
            continue
        for kind, filename in checkpoint_files(case).items():
            t0 = time.perf_counter()
            out, expected = run_case(vectors, case, filename)
            yield ReferenceResult(case["name"], kind, case["arch"], float(np.abs(out - expected).max()),
                                  time.perf_counter() - t0)
