"""Pruning: Lyapunov noise pruning (LNP), SCA structured channel pruning, magnitude baseline.

LNP (Chakraborty et al., ICLR 2024; task-agnostic pruning of an untrained heterogeneous recurrent SNN):
:func:`lnp_prune` runs the pipeline of :mod:`toolchain.prune.lnp` on a :class:`RecurrentNet` or an
:class:`toolchain.nn.hrsnn.HRSNN`; its steps are pure functions in :mod:`toolchain.prune.lyapunov` (noise-driven
runs, rate gains, linearisation, Benettin Lyapunov spectra), :mod:`toolchain.prune.graph_ops` (noise pruning,
Lyapunov matrix, betweenness, IPR, delocalisation) and :mod:`toolchain.prune.bayesopt` (GP + expected
improvement). The activity-based baseline is :mod:`toolchain.prune.activity`; task helpers (training, NRMSE,
synaptic operations) are in :mod:`toolchain.prune.tasks`. SCA and magnitude pruning: :mod:`toolchain.prune.sca`,
:mod:`toolchain.prune.magnitude`.
"""
from .activity import activity_prune, activity_prune_weights, neuron_activity
from .lnp import LNPConfig, LNPReport, LNPResult, lnp_prune, memory_capacity
from .lyapunov import RecurrentNet, largest_lyapunov, lyapunov_spectrum, network_lyapunov

__all__ = ["lnp_prune", "LNPConfig", "LNPReport", "LNPResult", "memory_capacity", "RecurrentNet",
           "lyapunov_spectrum", "network_lyapunov", "largest_lyapunov", "activity_prune", "activity_prune_weights",
           "neuron_activity"]
