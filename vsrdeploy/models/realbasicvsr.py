"""RealBasicVSR (mmagic ``RealBasicVSRNet``): image cleaning (up to 3 passes) then BasicVSR."""
from __future__ import annotations

from torch import nn

from .base import RecurrentVSR
from .basicvsr import BasicVSRNet, count_blocks
from .blocks import ResidualBlocksWithInputConv
from .cells import Cell, Port
from .registry import register_model
from .schedules.realbasicvsr import CleaningSchedule



class CleanCell(Cell):
    """One cleaning pass: ``lr_out = lr + cleaning(lr)``; ``residue`` = mean |cleaning(lr)| per frame."""

    def __init__(self, image_cleaning: nn.Module):
        super().__init__()
        self.image_cleaning = image_cleaning
        self.inputs = (Port("lr", (3,)),)
        self.outputs = (Port("lr_out", (3,)), Port("residue", (), None))

    def forward(self, lr):
        residue = self.image_cleaning(lr)
        return lr + residue, residue.abs().mean(dim=(1, 2, 3))


@register_model("realbasicvsr")
class RealBasicVSRNet(RecurrentVSR):
    """RealBasicVSR (Chan et al., CVPR 2022). Upstream: c64, 20 cleaning / 20 propagation blocks.

    ``dynamic_refine_thres`` cannot be read from a checkpoint; upstream trains with 255 (one pass)
    and tests with 5 (GAN model) or 1.5 (w/o GAN). The default here is 5, the released GAN model's test value.
    """

    default_config = {"mid_channels": 64, "num_propagation_blocks": 20, "num_cleaning_blocks": 20,
                      "dynamic_refine_thres": 5.0}
    upstream_configs = {
        "RealBasicVSR (GAN), test": {"mid_channels": 64, "num_propagation_blocks": 20, "num_cleaning_blocks": 20,
                                     "dynamic_refine_thres": 5.0},
        "RealBasicVSR w/o GAN, test": {"mid_channels": 64, "num_propagation_blocks": 20,
                                       "num_cleaning_blocks": 20, "dynamic_refine_thres": 1.5},
    }
    schedule_class = CleaningSchedule
    config_limits = {"num_propagation_blocks": (0, 256), "num_cleaning_blocks": (0, 256),
                     "dynamic_refine_thres": (0.0, 255.0)}
    min_size = 16

    def __init__(self, mid_channels: int = 64, num_propagation_blocks: int = 20, num_cleaning_blocks: int = 20,
                 dynamic_refine_thres: float = 5.0):
        super().__init__()
        self.mid_channels = mid_channels
        self.num_propagation_blocks, self.num_cleaning_blocks = num_propagation_blocks, num_cleaning_blocks
        self.dynamic_refine_thres = dynamic_refine_thres
        self.image_cleaning = nn.Sequential(ResidualBlocksWithInputConv(3, mid_channels, num_cleaning_blocks),
                                            nn.Conv2d(mid_channels, 3, 3, 1, 1))
        self.basicvsr = BasicVSRNet(mid_channels, num_propagation_blocks)

    def config(self) -> dict:
        return {"mid_channels": self.mid_channels, "num_propagation_blocks": self.num_propagation_blocks,
                "num_cleaning_blocks": self.num_cleaning_blocks, "dynamic_refine_thres": self.dynamic_refine_thres}

    def build_cells(self) -> dict[str, Cell]:
        return {"clean": CleanCell(self.image_cleaning), **self.basicvsr.build_cells()}

    @staticmethod
    def infer_config(sd: dict) -> dict:
        return {"mid_channels": sd["image_cleaning.1.weight"].shape[1],
                "num_cleaning_blocks": count_blocks(sd, "image_cleaning.0.main.2."),
                "num_propagation_blocks": count_blocks(sd, "basicvsr.backward_resblocks.main.2.")}

    @staticmethod
    def detect(keys) -> bool:
        return any(k.startswith("image_cleaning.") for k in keys)
