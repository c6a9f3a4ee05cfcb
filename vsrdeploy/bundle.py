"""Bundles: a directory with a manifest, one ONNX graph per cell and the PyTorch weights.

```
NAME.vsr/
  manifest.json   model (arch + config), scale, cells (file, inputs, outputs, dtypes, symbolic shapes),
                  schedule, precision, dcn mode, opset, versions, sha256 of every file
  cells/*.onnx
  weights.pth     the network's state dict (for the ``torch`` backends)
  engines/        TensorRT plans, built on demand (not hashed: a cache)
```
Opening a bundle validates the manifest against its schema (``manifest.py``), checks its description
hash, verifies every file's hash and refuses paths that leave the bundle directory.
"""
from __future__ import annotations

import contextlib
import copy
import datetime
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import BundleError, OutputError
from .manifest import FORMAT_VERSION, HASH_KEY, description_sha256, hash_problems, manifest_problems, model_problems

MANIFEST = "manifest.json"
__all__ = ["Bundle", "FORMAT_VERSION", "MANIFEST", "safe_join", "sha256_file", "staged_dir", "write_manifest"]


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


def bundle_members(path: Path) -> list[str] | None:
    """The files of the bundle at ``path`` that are not its own (relative paths), or None when ``path`` is
    not a vsrdeploy bundle. A bundle owns its manifest, the files the manifest lists and ``engines/``."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        owned = {MANIFEST, *manifest["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    foreign = []
    for root, dirs, names in os.walk(path):
        rel_root = os.path.relpath(root, path)
        if rel_root == "engines" or rel_root.startswith("engines" + os.sep):
            continue
        for name in names:
            rel = os.path.normpath(os.path.join(rel_root, name)).replace(os.sep, "/")
            if rel not in owned:
                foreign.append(rel)
    return foreign


def check_output_dir(out_dir: Path, force: bool) -> None:
    """Refuse to replace anything but a vsrdeploy bundle, and a bundle only with ``force``."""
    if not os.path.lexists(out_dir):
        return
    if out_dir.is_symlink() or not out_dir.is_dir():
        raise OutputError(f"{out_dir} exists and is not a bundle directory; choose a new output path")
    foreign = bundle_members(out_dir)
    if foreign is None:
        if not any(out_dir.iterdir()):
            return  # an empty directory holds nothing to lose
        raise OutputError(f"{out_dir} exists and is not a vsrdeploy bundle; refusing to write into it "
                          "(choose a new output path, e.g. NAME.vsr)")
    if foreign:
        more = f" (+{len(foreign) - 3} more)" if len(foreign) > 3 else ""
        raise OutputError(f"{out_dir} is a bundle but also holds other files ({', '.join(foreign[:3])}{more}); "
                          "move them out or choose a new output path")
    if not force:
        raise OutputError(f"{out_dir} already exists; pass --force (force=True) to replace that bundle")


@contextlib.contextmanager
def staged_dir(out_dir: Path, force: bool = False, keep_existing: bool = False):
    """Yield a temporary directory beside ``out_dir`` that becomes ``out_dir`` only if the block succeeds:
    an interrupted export or conversion never leaves a half-written bundle.

    An existing ``out_dir`` is replaced only if it is a vsrdeploy bundle and ``force`` is set (swapped in
    by renames; the old bundle is removed only after the new one is in place). ``keep_existing``: if a
    bundle appears at ``out_dir`` meanwhile (a concurrent export into a cache), keep it and drop ours.
    """
    out_dir = Path(os.path.abspath(out_dir))
    if not keep_existing:
        check_output_dir(out_dir, force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        yield tmp
        if keep_existing and (out_dir / MANIFEST).exists():
            shutil.rmtree(tmp)
            return
        old = None
        if os.path.lexists(out_dir):
            if not keep_existing:
                check_output_dir(out_dir, force)  # again: it may have changed while we worked
            if out_dir.is_dir() and not any(out_dir.iterdir()):
                out_dir.rmdir()
            else:
                old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
                os.replace(out_dir, old / "bundle")
        try:
            os.replace(tmp, out_dir)
        except BaseException:
            if old is not None:
                os.replace(old / "bundle", out_dir)
                old.rmdir()
            raise
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_manifest(directory: Path, manifest: dict) -> None:
    """Write ``manifest`` into ``directory`` with its ``description_sha256``. Written by a process with PyTorch
    (export, convert, calibrate), it is checked against the network's code here and remembered as passed, so a
    process without PyTorch opens the bundle without a child process (``manifest.model_problems``)."""
    manifest = {k: v for k, v in manifest.items() if k != HASH_KEY}
    manifest[HASH_KEY] = description_sha256(manifest)
    (Path(directory) / MANIFEST).write_text(json.dumps(manifest, indent=1))
    if "torch" in sys.modules and not manifest_problems(manifest):  # a malformed one is refused when opened
        model_problems(manifest)


@dataclass
class CellInfo:
    name: str
    file: str
    inputs: list[dict]
    outputs: list[dict]
    stateless: bool
    ops: list[str]
    halo: int | None = None  # recorded since 0.3.12, as are the two below (``models.spec``)
    largest_op: list[float] | None = None


class Bundle:
    def __init__(self, path, verify: bool = True):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not self.path.is_dir():
            raise BundleError(f"bundle not found: {self.path} (create one with `vsrdeploy export CHECKPOINT`)")
        if not manifest_path.is_file():
            raise BundleError(f"{self.path} is not a bundle: it has no {MANIFEST}")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise BundleError(f"{manifest_path} is not valid JSON ({e}); re-export the bundle") from None
        problems = manifest_problems(manifest)
        if not problems:
            for rel in manifest["files"]:
                try:
                    safe_join(self.path, rel)
                except BundleError as e:
                    problems.append(str(e))
            problems += hash_problems(manifest) + model_problems(manifest)
        if problems:
            raise BundleError(f"{self.path} has an invalid manifest ({len(problems)} problem"
                              f"{'s' if len(problems) > 1 else ''}): {'; '.join(problems)}. Re-export the bundle")
        self.manifest = manifest
        self.cells = {name: CellInfo(name=name, **info) for name, info in manifest["cells"].items()}
        if verify:
            self.verify()

    def verify(self) -> None:
        """Check every file the manifest lists against its sha256 (cells, weights, everything)."""
        for rel, digest in self.manifest["files"].items():
            full = safe_join(self.path, rel)
            if not full.exists():
                raise BundleError(f"{self.path}: {rel} listed in the manifest is missing; re-export the bundle")
            if not full.is_file():
                raise BundleError(f"{self.path}: {rel} listed in the manifest is not a regular file; re-export "
                                  "the bundle")
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
        """The network without weights (meta device): its schedule, scale and size rules. Needs PyTorch."""
        import torch

        from .models import get_model_class
        with torch.device("meta"):
            return get_model_class(self.arch)(**self.config)

    def spec(self):
        """What a stream needs of the network (``models.spec.NetSpec``), read from the manifest without PyTorch;
        a bundle exported before 0.3.12 lacks some of it and gets :meth:`skeleton` (PyTorch) instead."""
        from .models.spec import NetSpec
        return NetSpec.from_manifest(self.manifest) or self.skeleton()

    def load_network(self, device="cpu"):
        """The PyTorch network with the bundle's weights."""
        import torch

        from .models import build_model
        net = build_model(self.arch, **self.config)
        state = torch.load(self.file(self.manifest["weights"]), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        return net.eval().to(device)

    def derive(self, out_dir, cell_models: dict, precision: str, details: dict, force: bool = False) -> Path:
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
        with staged_dir(out_dir, force=force) as tmp:
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
            write_manifest(tmp, manifest)
        return out_dir

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, arch={self.arch}, dcn={self.dcn}, precision={self.precision})"
