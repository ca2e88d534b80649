"""Memory measurements of a training step that do not rely on autograd's bookkeeping.

* :func:`allocator_peak_bytes` — every CPU tensor allocation and free torch's allocator performs while a callable
  runs (torch.profiler's memory events: activations, traces, gradient accumulators, optimiser state, temporaries,
  whether autograd saves them or not), summed in time order; returns the peak of the running total above the
  level at the start. Deterministic for a deterministic callable (it counts bytes, not pages).
* :func:`rss_bytes`, :func:`reset_peak_rss`, :func:`peak_rss_bytes` — the process's resident set and its
  high-water mark (``VmHWM``), which ``/proc/self/clear_refs`` can reset to the current RSS (Linux ≥ 4.0), so a
  peak can be taken over one phase of a process instead of its whole life. Page-granular and allocator dependent:
  use in a fresh subprocess and repeat.
"""
from __future__ import annotations

import os
import resource
from typing import Any, Callable, Tuple

__all__ = ["allocator_peak_bytes", "rss_bytes", "reset_peak_rss", "peak_rss_bytes"]


def allocator_peak_bytes(fn: Callable[[], Any]) -> Tuple[int, Any]:
    """Run ``fn()`` under torch's profiler with memory recording; return (peak bytes above the start, fn's value).

    The profiler reports one event per CPU allocation (+bytes) and free (−bytes) with a microsecond timestamp;
    events are summed in timestamp order (ties keep the profiler's recording order). Tensors alive before ``fn``
    and freed inside it count negative, so the figure is the extra memory ``fn`` needed at its worst moment.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
        value = fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type() ==
              _cpu_device_type()]
    events.sort(key=lambda e: e.start_us())
    now = peak = 0
    for e in events:
        now += int(e.nbytes())
        peak = max(peak, now)
    return peak, value


def _cpu_device_type() -> Any:
    import torch
    return torch._C._autograd.DeviceType.CPU


def rss_bytes() -> int:
    """The current resident set size of this process in bytes (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Reset the high-water mark ``VmHWM`` to the current RSS; False where the kernel refuses (then
    :func:`peak_rss_bytes` falls back to the whole-process peak)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """``VmHWM`` of this process in bytes (since the last :func:`reset_peak_rss`), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
