"""Spiking layers for PyTorch, their NIR mappings, and the hardware-aware integer mode.

Float modules (single-step; the time loop is in :class:`SpikingNet`): :class:`LIF`, :class:`CubaLIF`, :class:`LI`,
:class:`Recurrent`, :class:`SumPool2d`. NIR: :func:`to_graph`, :func:`from_graph`. Hardware-aware:
:class:`IntegerNet` (a compiled Program evaluated in torch with the reference simulator's integer rules) and
:func:`quantisation_aware` (fake quantisation with straight-through estimators for fine-tuning).
See ``notes/NN_CONTRACT.md`` for the contract other parts code against.
"""
from . import functional
from .layers import Recurrent, SumPool2d
from .net import SpikingNet, is_stateful, neuron_of
from .neurons import (LI, LIF, THRESHOLD_MIN, CubaLIF, CubaLIFState, LIFState, LIState, SpikingNeuron)

__all__ = [
    "functional", "LIF", "CubaLIF", "LI", "LIFState", "CubaLIFState", "LIState", "SpikingNeuron", "THRESHOLD_MIN",
    "Recurrent", "SumPool2d", "SpikingNet", "is_stateful", "neuron_of",
]
from .nir_map import from_graph, node_names, to_graph

__all__ += ["to_graph", "from_graph", "node_names"]
from .integer import IntegerNet

__all__ += ["IntegerNet"]
from .qat import QuantisationAware, quantisation_aware

__all__ += ["QuantisationAware", "quantisation_aware"]
