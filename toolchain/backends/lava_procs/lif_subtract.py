"""``LIFSubtract``: Lava's LIF with reset by subtraction (``v -= vth << 6`` after a spike) instead of ``v = 0``.

Lava 0.10.0 has no such neuron. The process is Lava's :class:`~lava.proc.lif.process.LIF` unchanged (same Vars,
same ports); the ``fixed_pt`` model is Lava's bit-accurate ``PyLifModelBitAcc`` with only ``reset_voltage``
replaced, so every other step of the arithmetic (decays, wraps, clip, threshold) is Lava's own code. The
same rule is :func:`toolchain.fixedpoint.lif_step` with ``reset_mode="subtract"``.

Only absolute imports here: Lava's model search executes this file as a stand-alone module.
"""
import numpy as np

from lava.magma.core.decorator import implements
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import PyLifModelBitAcc
from lava.proc.lif.process import LIF


class LIFSubtract(LIF):
    """Lava's LIF process whose neurons reset by subtracting the threshold: ``v -= vth << 6`` when they spike
    (``u`` kept). Parameters as :class:`lava.proc.lif.process.LIF`."""


@implements(proc=LIFSubtract, protocol=LoihiProtocol)
class PyLifSubtractModelBitAcc(PyLifModelBitAcc):
    """``PyLifModelBitAcc`` (tags ``bit_accurate_loihi``, ``fixed_pt``; CPU) with the subtractive reset.

    ``implements_process = None`` lets ``@implements`` point the inherited model at :class:`LIFSubtract` (Lava
    refuses to re-target a model class whose parent already names a process).
    """

    implements_process = None

    def reset_voltage(self, spike_vector: np.ndarray) -> None:
        """``v[s] -= vth << 6`` (``effective_vth``: a scalar or one value per neuron)."""
        vth = np.broadcast_to(np.asarray(self.effective_vth), self.v.shape)
        self.v[spike_vector] -= vth[spike_vector].astype(self.v.dtype)
