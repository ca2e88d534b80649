"""The structured-sparse intermediate representation: nodes, weight storage, graph, verify."""
from .graph import Edge, Graph, synapse_count
from .nodes import (IF, LI, LIF, NEURON_TYPES, RESET_MODES, SPIKING_TYPES, SYNAPSE_TYPES, Affine, AvgPool2d,
                    Conv1d, Conv2d, CubaLI, CubaLIF, Delay, Flatten, Input, Integrator, Linear, Node, Output, Scale,
                    SumPool2d, Threshold)
from .storage import Csr, Dense, Structured, WeightStorage, as_storage
from .verify import LEVELS, register_check, verify

__all__ = [
    "Edge", "Graph", "synapse_count", "Node", "Input", "Output", "Affine", "Linear", "Scale", "Conv1d", "Conv2d",
    "SumPool2d", "AvgPool2d", "Flatten", "LIF", "CubaLIF", "IF", "LI", "CubaLI", "Integrator", "Threshold", "Delay",
    "NEURON_TYPES", "SPIKING_TYPES", "SYNAPSE_TYPES", "RESET_MODES", "WeightStorage", "Dense", "Csr", "Structured",
    "as_storage", "verify", "register_check", "LEVELS",
]
