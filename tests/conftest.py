import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
VECTORS = Path(os.environ.get("VSRDEPLOY_REFERENCE", REPO.parent / "shared" / "reference" / "vectors"))

torch.set_grad_enabled(False)
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def vectors() -> Path:
    if not (VECTORS / "index.json").exists():
        pytest.skip(f"reference vectors not found at {VECTORS} (set VSRDEPLOY_REFERENCE)")
    return VECTORS


def random_clip(t=5, h=32, w=32, n=1, seed=0) -> torch.Tensor:
    """Smooth random frames with small motion, so flows are non-trivial but sane."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, h + 2 * t, w + 2 * t, generator=g)
    base = torch.nn.functional.avg_pool2d(base, 3, 1, 1)
    frames = [base[..., i:i + h, i:i + w] for i in range(t)]
    return torch.stack(frames, dim=1).contiguous()


def moving_clip(path, frames: int, width: int, height: int) -> Path:
    """A small MJPG .avi of ``frames`` frames, ``width`` x ``height``, random content moving 1 pixel down and 2 right a frame
    (OpenCV writes it: no ffmpeg needed)."""
    import numpy as np
    cv2 = pytest.importorskip("cv2")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12, (width, height))
    base = (np.random.default_rng(0).random((height + frames, width + 2 * frames, 3)) * 255).astype(np.uint8)
    for i in range(frames):
        writer.write(np.ascontiguousarray(base[i:i + height, 2 * i:2 * i + width]))
    writer.release()
    return Path(path)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A BasicVSR c8n1 bundle with random weights (no DCN, so every runtime takes it)."""
    pytest.importorskip("onnx")
    import vsrdeploy
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr", mid_channels=8, num_blocks=1).eval()
    return vsrdeploy.export_onnx(net, tmp_path_factory.mktemp("tiny") / "tiny.vsr")


class AliveOutputs:
    """A ``run`` callable for ``stream_cells`` that records, before each call, the bytes of the cell outputs still
    alive (output frames of ``upsample`` excepted: the budget counts one on its way out apart); ``peak`` is
    the most seen."""

    def __init__(self, net):
        import weakref

        from vsrdeploy.models.cells import TorchRunner
        self._ref = weakref.ref
        self.runner = TorchRunner(net.cells)
        self.outputs: list = []
        self.peak = 0

    def __call__(self, cell, inputs):
        alive = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in (r() for r in self.outputs)
                 if t is not None}
        self.peak = max(self.peak, sum(alive.values()))
        out = self.runner(cell, inputs)
        if cell != "upsample":
            self.outputs.extend(self._ref(t) for t in out.values())
        return out
