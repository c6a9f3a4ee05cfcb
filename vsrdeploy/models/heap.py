"""What the process's allocator does with freed feature maps while a stream runs: a trade of memory for time.

A stream allocates and frees maps of 1-50 MB all the time (cell outputs, the runtimes' working buffers).
glibc's malloc serves an allocation either from its heap, which keeps freed pages for the next allocation, or
from a fresh ``mmap``, whose pages go back to the OS when freed and are faulted in (and zeroed) again by the
next allocation. Which one is set by its mmap threshold (``mallopt``):

- ``"return"`` (the default): 1 MB. Every map goes back to the OS when freed: the lowest peak memory (BasicVSR
  c64 on torch at 180x320: 1533 -> 1236 MB when introduced), but every allocation faults its pages in again:
  BasicVSR++'s INT8 openvino-cpu stream at 180x320 took 4.4 GB of page faults per 3 frames and 1.58x its time
  with ``"keep"`` on a 2-vCPU Zen 5 VM (benchmarks/RESULTS.md, "What freed memory costs").
- ``"keep"``: 32 MB (the most glibc allows), and the heap's free top is trimmed only above 64 MB: what glibc
  settles at by itself after its first large frees. Maps up to 32 MB are reused from the heap: faster (1.0-1.6x
  on openvino-cpu at 180x320), and the heap keeps what it once held (90 MB-1.1 GB more there).

The whole-clip PyTorch baseline of the speed tables (``evaluate.bench.upstream_forward``) runs with glibc's own
default, as upstream's code does. On a C library other than glibc both policies leave the allocator alone
(:func:`set_heap_policy` says so).
"""
from __future__ import annotations

import ctypes
import ctypes.util

from ..errors import ConfigError

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters
_M_MMAP_THRESHOLD = -3

#: policy -> (mmap threshold, trim threshold, what it trades); 128 KiB is glibc's initial trim threshold
HEAP_POLICIES = {
    "return": (1 << 20, 128 << 10, "least memory"),
    "keep": (32 << 20, 64 << 20, "faster, more memory"),
}
DEFAULT_HEAP_POLICY = "return"

_libc = None
_applied: str | None = None


def check_heap_policy(policy: str) -> str:
    if policy not in HEAP_POLICIES:
        trades = "; ".join(f"{name}: {what}" for name, (_, _, what) in HEAP_POLICIES.items())
        raise ConfigError(f"heap policy must be one of {', '.join(HEAP_POLICIES)}, got {policy!r} ({trades})")
    return policy


def _glibc():
    """glibc's ``mallopt``, or None on another C library."""
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            lib = ctypes.CDLL(name) if name else None
        except OSError:
            lib = None
        _libc = lib if lib is not None and hasattr(lib, "mallopt") and hasattr(lib, "gnu_get_libc_version") else False
    return _libc or None


def set_heap_policy(policy: str) -> str:
    """Apply ``policy`` (a key of :data:`HEAP_POLICIES`) to this process's malloc; returns what was done: the
    policy's name, or why nothing was (not glibc). Process-wide, and it stays until another policy is set."""
    global _applied
    check_heap_policy(policy)
    libc = _glibc()
    if libc is None:
        return f"{policy}: not applied (the C library is not glibc; its own default applies)"
    if _applied != policy:
        mmap_threshold, trim_threshold, _ = HEAP_POLICIES[policy]
        libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
        libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
        _applied = policy
    return policy
