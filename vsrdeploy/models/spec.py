"""A network as its bundle describes it: what a stream needs to know, without PyTorch or weights.

The streaming machinery (``models.streaming``) reads from a network only its configuration (the schedules
read ``mid_channels``, ``keyframe_stride``, ``padding``, ``dynamic_refine_thres``, ``embed_dim``), its
scale, padding and minimum input, its schedule class and its cells' ports, statefulness, halo and largest
operation. A bundle's manifest records all of these at export, so :class:`NetSpec` built from it drives a
stream on the ONNX Runtime and OpenVINO CPU backends with no PyTorch in the process.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .budget import LargestOp
from .ports import CellSpec, Port
from .schedule import Schedule
from .schedules import SCHEDULES


@dataclass
class NetSpec:
    arch: str
    config: dict
    scale: int
    pad_multiple: int
    min_input_size: int
    schedule_class: type[Schedule]
    cells: dict[str, CellSpec]
    largest_ops: dict[str, LargestOp] = field(default_factory=dict)

    def __getattr__(self, name: str):
        # the configuration, read as the network's attributes (``net.mid_channels``), as schedules do
        config = self.__dict__.get("config")
        if config is not None and name in config:
            return config[name]
        raise AttributeError(f"{type(self).__name__} of {self.__dict__.get('arch')!r} has no {name!r}")

    def schedule(self) -> Schedule:
        return self.schedule_class(self)

    @classmethod
    def from_manifest(cls, manifest: dict) -> "NetSpec | None":
        """The spec a manifest describes, or None when it lacks what a stream needs (a bundle exported
        before 0.3.12 records no halos, largest operations or minimum input size)."""
        cells = manifest["cells"]
        recorded = all("largest_op" in c and "halo" in c and all("scale" in p for p in (*c["inputs"], *c["outputs"]))
                       for c in cells.values())
        if "min_input_size" not in manifest or not recorded:
            return None
        schedule_class = SCHEDULES.get(manifest["schedule"])
        if schedule_class is None:
            return None
        specs, largest = {}, {}
        for name, info in cells.items():
            specs[name] = CellSpec(inputs=tuple(_port(p) for p in info["inputs"]),
                                   outputs=tuple(_port(p) for p in info["outputs"]),
                                   stateless=info["stateless"], halo=info["halo"])
            largest[name] = LargestOp(*info["largest_op"])
        return cls(arch=manifest["model"]["arch"], config=dict(manifest["model"]["config"]),
                   scale=manifest["scale"], pad_multiple=manifest["pad_multiple"],
                   min_input_size=manifest["min_input_size"], schedule_class=schedule_class, cells=specs,
                   largest_ops=largest)


def _port(record: dict) -> Port:
    """A manifest port record (``shape`` ``["N", *dims, H, W]``, its ``scale`` against the LR frame) -> :class:`Port`."""
    scale = record["scale"]
    dims = record["shape"][1:] if scale is None else record["shape"][1:-2]
    return Port(record["name"], tuple(int(d) for d in dims), scale)
