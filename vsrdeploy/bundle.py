"""Bundles: a directory with a manifest, one ONNX graph per cell and the PyTorch weights.

```
NAME.vsr/
  manifest.json   model (arch + config), scale, cells (file, inputs, outputs, dtypes, symbolic shapes),
                  schedule, precision, dcn mode, opset, versions, sha256 of every file
  cells/*.onnx
  weights.pth     the network's state dict (for the ``torch`` backends)
  engines/        TensorRT plans, built on demand (not hashed: a cache)
```
Opening a bundle verifies every hash and refuses paths that leave the bundle directory.
"""
from __future__ import annotations

import contextlib
import copy
import datetime
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import BundleError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def safe_join(root: Path, relpath: str) -> Path:
    """``root / relpath``, refusing absolute paths and anything that resolves outside ``root``."""
    if os.path.isabs(relpath) or relpath.startswith(("/", "\\")):
        raise BundleError(f"manifest path {relpath!r} is absolute; bundle paths must stay inside {root}")
    root_real = os.path.realpath(root)
    full = os.path.realpath(os.path.join(root_real, relpath))
    if os.path.commonpath([root_real, full]) != root_real:
        raise BundleError(f"manifest path {relpath!r} escapes the bundle directory {root}; refusing to read it")
    return Path(full)


def op_name(node) -> str:
    """An ONNX node's op as bundles record it: ``Conv``, or ``domain::Op`` for custom domains."""
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def name_nodes(model) -> None:
    """Give unnamed nodes of an ONNX model a name, so rules and tools can address every node."""
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"


@contextlib.contextmanager
def staged_dir(out_dir: Path):
    """Yield a temporary directory beside ``out_dir`` that replaces it only if the block succeeds:
    an interrupted export or conversion never leaves a half-written bundle."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        yield tmp
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@dataclass
class CellInfo:
    name: str
    file: str
    inputs: list[dict]
    outputs: list[dict]
    stateless: bool
    ops: list[str]


class Bundle:
    def __init__(self, path, verify: bool = True):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not self.path.is_dir():
            raise BundleError(f"bundle not found: {self.path} (create one with `vsrdeploy export CHECKPOINT`)")
        if not manifest_path.exists():
            raise BundleError(f"{self.path} is not a bundle: it has no {MANIFEST}")
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(f"{manifest_path} is not valid JSON ({e}); re-export the bundle") from None
        version = self.manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(f"{self.path} has bundle format {version!r}; this vsrdeploy reads {FORMAT_VERSION}. "
                              "Re-export it with this version")
        self.cells = {name: CellInfo(name=name, **info) for name, info in self.manifest["cells"].items()}
        for rel in self.manifest["files"]:
            safe_join(self.path, rel)
        for cell in self.cells.values():
            if cell.file not in self.manifest["files"]:
                raise BundleError(f"cell {cell.name} file {cell.file!r} has no hash in the manifest")
        if verify:
            self.verify()

    def verify(self) -> None:
        for rel, digest in self.manifest["files"].items():
            full = safe_join(self.path, rel)
            if not full.exists():
                raise BundleError(f"{self.path}: {rel} listed in the manifest is missing; re-export the bundle")
            actual = sha256_file(full)
            if actual != digest:
                raise BundleError(f"{self.path}: {rel} does not match its sha256 in the manifest "
                                  f"(damaged or modified); re-export the bundle")

    # -- what runtimes need --------------------------------------------------------------
    @property
    def arch(self) -> str:
        return self.manifest["model"]["arch"]

    @property
    def config(self) -> dict:
        return self.manifest["model"]["config"]

    @property
    def dcn(self) -> str:
        return self.manifest["dcn"]

    @property
    def precision(self) -> str:
        return self.manifest.get("precision", "fp32")

    def file(self, rel: str) -> Path:
        return safe_join(self.path, rel)

    def cell_path(self, name: str) -> Path:
        return self.file(self.cells[name].file)

    def cell_ops(self) -> set[str]:
        return {op for c in self.cells.values() for op in c.ops}

    def skeleton(self):
        """The network without weights (meta device): its schedule, scale and size rules."""
        from .models import get_model_class
        with torch.device("meta"):
            return get_model_class(self.arch)(**self.config)

    def load_network(self, device="cpu"):
        """The PyTorch network with the bundle's weights."""
        from .models import build_model
        net = build_model(self.arch, **self.config)
        state = torch.load(self.file(self.manifest["weights"]), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        return net.eval().to(device)

    def derive(self, out_dir, cell_models: dict, precision: str, details: dict) -> Path:
        """Write a new bundle at ``out_dir``: this one with the cells in ``cell_models`` (name ->
        ``onnx.ModelProto``) replaced, ``precision`` set and ``details`` recorded under
        ``manifest['precision_details']`` (e.g. the FP16 keep-list or the INT8 quantization recipe)."""
        import onnx
        out_dir = Path(out_dir)
        if out_dir.resolve() == self.path.resolve():
            raise BundleError(f"refusing to overwrite the source bundle {self.path}; choose another output name")
        unknown = set(cell_models) - set(self.cells)
        if unknown:
            raise BundleError(f"{self.path} has no cell(s) {', '.join(sorted(unknown))}")
        manifest = copy.deepcopy(self.manifest)
        with staged_dir(out_dir) as tmp:
            (tmp / "cells").mkdir()
            for name, info in self.cells.items():
                dst = tmp / info.file
                if name in cell_models:
                    onnx.save(cell_models[name], str(dst))
                    manifest["cells"][name]["ops"] = sorted({op_name(n) for n in cell_models[name].graph.node})
                else:
                    shutil.copy2(self.cell_path(name), dst)
            shutil.copy2(self.file(manifest["weights"]), tmp / manifest["weights"])
            manifest["files"] = {rel: sha256_file(tmp / rel) for rel in manifest["files"]}
            manifest["precision"] = precision
            manifest["precision_details"] = details
            manifest["derived_from"] = {"bundle": self.path.name, "precision": self.precision,
                                        "manifest_sha256": sha256_file(self.path / MANIFEST)}
            manifest["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        return out_dir

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, arch={self.arch}, dcn={self.dcn}, precision={self.precision})"
