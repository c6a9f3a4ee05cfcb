"""Scale-out on Ray: many videos, and long videos cut into segments, across workers and machines.

``run_batch(inputs, model, outdir, ...)`` is the API behind ``vsrdeploy batch``. Ray is imported only
when a job runs (``pip install "vsrdeploy[ray]"``).
"""
from .driver import BatchJob, BatchResult, WorkerError, run_batch
from .segments import (
           DEFAULT_SEGMENT,
           DEFAULT_WARMUP,
           Segment,
           plan_segments,
           segment_outputs,
)

__all__ = [
           "DEFAULT_SEGMENT",
           "DEFAULT_WARMUP",
           "BatchJob",
           "BatchResult",
           "Segment",
           "WorkerError",
           "plan_segments",
           "run_batch",
           "segment_outputs",
]
