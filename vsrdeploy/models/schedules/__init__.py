"""Each network's schedule: plain Python over cells, no PyTorch (``models.schedule`` has the machinery).

A bundle names its schedule in its manifest (``"schedule": "GridPropagationSchedule"``); :data:`SCHEDULES`
finds the class without building the network, so a bundle streams without importing PyTorch.
"""
from __future__ import annotations

from ..schedule import Schedule
from .basicvsr import BidirectionalSchedule
from .basicvsr_pp import BRANCHES, GridPropagationSchedule
from .iconvsr import IconVSRSchedule
from .psrt import PSRTSchedule
from .realbasicvsr import MAX_CLEANING_PASSES, CleaningSchedule

#: schedule class name (as manifests record it) -> class
SCHEDULES: dict[str, type[Schedule]] = {cls.__name__: cls for cls in (
    BidirectionalSchedule, IconVSRSchedule, CleaningSchedule, GridPropagationSchedule, PSRTSchedule)}

__all__ = ["BRANCHES", "MAX_CLEANING_PASSES", "SCHEDULES", "BidirectionalSchedule", "CleaningSchedule",
           "GridPropagationSchedule", "IconVSRSchedule", "PSRTSchedule"]
