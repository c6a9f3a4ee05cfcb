"""Run the networks on upstream reference vectors (``index.json`` + checkpoints + ``.io.npz``)."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..checkpoint import load_checkpoint
from ..errors import VSRDeployError

#: config values a checkpoint cannot tell; taken from the case's upstream config
NOT_IN_WEIGHTS = ("keyframe_stride", "dynamic_refine_thres")


@dataclass
class ReferenceResult:
    case: str
    checkpoint: str
    arch: str
    max_error: float
    seconds: float
    runtime: str = "pytorch"


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


def run_bundle_case(vectors: str, case: dict, filename: str, backend: str, workdir: str):
    """Export the case's checkpoint to a bundle (DCN form the backend takes) and run it on ``backend``."""
    from ..export import export_onnx
    from ..runtimes.base import get_backend_class
    from ..runtimes.engine import Upscaler
    from ..bundle import Bundle

    dcn = get_backend_class(backend).preferred_dcn
    target = os.path.join(workdir, f"{case['name']}-{dcn}.vsr")
    if not os.path.exists(target):
        overrides = {k: v for k, v in case["config"].items() if k in NOT_IN_WEIGHTS}
        export_onnx(os.path.join(vectors, filename), target, arch=case["arch"], dcn=dcn, **overrides)
    bundle = Bundle(target)
    io = np.load(os.path.join(vectors, case["files"]["io"]))
    return Upscaler.create(bundle, backend).upscale(io["lrs"][0], clamp=False)[None], io["out"]


def iter_reference_results(vectors: str, backends=(), skip_arches=()) -> Iterator[ReferenceResult]:
    """PyTorch on every checkpoint format of every case; then, per backend, the exported bundle."""
    import tempfile
    from ..models import list_models

    with tempfile.TemporaryDirectory(prefix="vsrdeploy-parity-") as workdir:
        for case in load_index(vectors):
            if case["arch"] in skip_arches or case["arch"] not in list_models():
                continue
            for kind, filename in checkpoint_files(case).items():
                t0 = time.perf_counter()
                out, expected = run_case(vectors, case, filename)
                yield ReferenceResult(case["name"], kind, case["arch"], float(np.abs(out - expected).max()),
                                      time.perf_counter() - t0)
            if case["arch"] == "spynet":
                continue  # a flow network: nothing to stream
            kind, filename = next(iter(checkpoint_files(case).items()))
            for backend in backends:
                t0 = time.perf_counter()
                out, expected = run_bundle_case(vectors, case, filename, backend, workdir)
                yield ReferenceResult(case["name"], kind, case["arch"], float(np.abs(out - expected).max()),
                                      time.perf_counter() - t0, runtime=f"bundle on {backend}")
