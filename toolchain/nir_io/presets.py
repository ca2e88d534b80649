"""Per-framework conventions of NIR files: what a framework's exporter really writes, and how to read it back.

NIR 1.0 stores continuous-time parameters (tau in seconds) but neither the time step ``dt`` nor the reset mode, and
the exporters of the frameworks do not agree on what they write. A *preset* names one framework's conventions;
:func:`toolchain.nir_io.load` applies it (``load(path, preset="snntorch")``). Explicit ``dt=`` / ``reset=``
arguments always win over a preset's defaults.

Each row was checked against the exporter's source: snnTorch 1.0 (``snntorch/export_nir.py``) and Norse 1.1.0
(``norse/torch/utils/export_nir.py``) are installed here and the tests export small models with them and compare
spikes with our float executor; Rockpool 3.1 (its NIR export needs ``nir<=1.0.4``) is not installed: a graph it
exported and its own spikes were written once by ``tests/data/frameworks/make_rockpool.py`` and
``tests/test_fidelity_frameworks.py`` checks the preset against them, spike for spike; Sinabs 3.1.3 (``nir<=1.0.4``,
an exporter written for nirtorch 1) likewise: ``tests/data/frameworks/make_sinabs.py`` ran it once from a separate
``pip install --target`` folder holding sinabs, nir 1.0.4 and nirtorch 1.0 (torch from our venv), and the test checks
the shipped graph against Sinabs' own spikes and ExpLeak voltages;
Lava has no NIR exporter, its row is the convention of the NIR paper's Lava importer (``paper/nir_to_lava.py``,
``dt = 1e-4``) and of Loihi.

======== ======= ========= ============================ ================================================================
preset   dt (s)  reset     tau in the file              executor conventions / notes
======== ======= ========= ============================ ================================================================
snntorch 1e-4    subtract  seconds: tau = dt/(1-beta)   ``Leaky``→LIF, ``Synaptic``→CubaLIF with r = tau_mem/dt and
                                                        w_in = tau_syn/dt, so one Euler step is v = beta·v + I exactly.
                                                        ``dt = 1e-4`` is hard-coded in the exporter. snnTorch's default
                                                        reset mechanism is "subtract" (the Braille "zero" models need
                                                        ``reset="zero"``). Reset timing ``"snntorch"``: snnTorch applies
                                                        the reset of a spike at step t-1 at step t *after* that step's
                                                        update (``reset_delay=True``): subtract → v_t = f(v_{t-1}) − θ
                                                        (the subtraction is not decayed); zero → v_t = 0 for
                                                        ``Synaptic``/``RSynaptic``/``RLeaky`` (CubaLIF, and LIF in a
                                                        recurrent loop), while ``Leaky`` zeroes before the update, which
                                                        is the immediate reset.
norse    1e-3    zero      seconds × dt (Norse 1.1.0    ``LIFBoxCell``→LIF, ``LIFCell``→CubaLIF, ``IAFCell``→IF,
                           writes ``dt / tau_inv``):    ``LIBoxCell``→LI, all with r = 1 and w_in = 1. The time
                           tau = tau_file / source_dt   constants are decoded with ``source_dt`` (the dt given to
                                                        ``to_nir``, default 1e-3; ``load(..., source_dt=)``), not with
                                                        the target ``dt``: ``dt=1e-4`` runs the same network at a
                                                        finer step. The current's jump uses the target dt (the
                                                        step Norse's cells ran at).
                                                        Norse's ``LIFCell`` adds the input to the current undecayed,
                                                        updates v with that current, then decays the current: that is
                                                        the IR's current-first Euler step with w_in ← w_in·tau_syn/dt
                                                        (Norse's stored current is the IR's i times 1 − dt/tau_syn).
                                                        Files from Norse before 1.1 (e.g. the NIR paper's
                                                        ``lif_norse.nir``) hold tau in seconds: load those without
                                                        this preset.
sinabs   1.0     subtract  time steps: tau = tau_file·dt ``IAF``→IF (r = 1), ``LIF``→LIF, ``ExpLeak``→LI (r = 1,
                                                        v_leak = 0). Sinabs has no physical time step (dt = 1 "step");
                                                        pass ``dt=`` to get seconds. Sinabs decays exactly,
                                                        v = α v + (1 − α) I for ``LIF`` (``norm_input=True``, its
                                                        default) and v = α v + I for ``ExpLeak`` (``norm_input=False``,
                                                        its default), α = exp(−1/τ): :meth:`Preset.exact_to_euler`
                                                        rewrites tau (and r of LI) into the equivalent Euler step (the
                                                        file does not record ``norm_input``: other settings are not
                                                        recoverable). Checked against Sinabs 3.1.3's own run. Sinabs
                                                        spikes when v ≥ θ (NIR: v > θ) and may emit several spikes per
                                                        step (``MultiSpike``); the IR spikes once.
rockpool 1e-3    subtract  seconds                      ``LIFTorch``→CubaLIF with r = tau_mem·exp(−dt/tau_mem)/dt,
                                                        ``ExpSynTorch``→LI. Rockpool decays exactly (exp(−dt/tau)):
                                                        :meth:`Preset.exact_to_euler` rewrites tau, r and w_in so that
                                                        the Euler step at dt is Rockpool's step (LIF/CubaLIF; checked
                                                        against Rockpool 3.1's own run in tests/test_fidelity_frameworks.py).
                                                        Rockpool spikes when v ≥ θ and may emit several spikes per
                                                        step; the IR spikes when v > θ, once.
lava     1e-4    zero      seconds                      The IR's own semantics (Loihi): current first, then voltage with
                                                        the new current; immediate reset to zero.
======== ======= ========= ============================ ================================================================

``preset=None`` reads tau in seconds, resets to zero (unless the file's own metadata, written by
:func:`toolchain.nir_io.export`, says otherwise) and leaves ``dt`` unset unless given or stored in the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..errors import NirImportError

__all__ = ["Preset", "PRESETS", "get_preset", "RESET_TIMINGS"]

#: Reset timings the float executor knows: "immediate" (NIR/Loihi), "deferred" (reset of step t-1 applied after
#: the update of step t), "snntorch" (per node, as snnTorch's modules do it; see the table above).
RESET_TIMINGS = ("immediate", "deferred", "snntorch")


@dataclass(frozen=True)
class Preset:
    """One framework's NIR conventions (see the module docstring's table).

    ``tau_unit``: ``"s"`` (seconds), ``"s*dt"`` (seconds times dt: divide by dt) or ``"steps"`` (multiply by dt).
    ``w_in_rule``: ``"as_is"`` or ``"jump"`` (the framework adds the input to the synaptic current undecayed:
    w_in ← w_in · tau_syn/dt, so that one Euler step adds exactly I).
    """

    name: str
    dt: float
    reset: str
    tau_unit: str = "s"
    w_in_rule: str = "as_is"
    reset_timing: str = "immediate"
    summary: str = ""
    tau_dt: str = "target"
    decay: str = "euler"

    def exact_to_euler(self, params: Dict[str, np.ndarray], dt: Optional[float], integrator: bool = False
                       ) -> Dict[str, np.ndarray]:
        """LIF (``tau``, ``r``) or CubaLIF/CubaLI (``tau_syn``, ``tau_mem``, ``r``, ``w_in``) parameters, tau in s,
        rewritten so that the IR's forward-Euler step at ``dt`` *is* the framework's step.

        ``decay = "exp"`` (Rockpool 3.1 ``LIFTorch``: ``i = β(i + I)``, ``v = α v + i``, with α = exp(−dt/tau_mem),
        β = exp(−dt/tau_syn); the exporter writes ``r = tau_mem·α/dt``, ``w_in = 1``): the Euler rate
        ``a = 1 − exp(−dt/tau)`` becomes ``dt/tau``, ``r ← k/a_mem`` with ``k = r_file·dt/(tau_mem·α)`` (1 for the
        exporter's own r) and ``w_in ← w_in_file·β/a_syn``. ``"exp_norm"`` (Sinabs 3.1 ``LIF``, ``norm_input=True``
        by default: ``v = α v + (1 − α)·I``; ``ExpLeak`` → LI, ``norm_input=False`` by default: ``v = α v + I``;
        the exporter writes ``r = 1``): ``dt/tau ← a``, ``r`` unchanged for LIF and ``r ← r/a`` for LI
        (``integrator=True``). ``"euler"``: unchanged."""
        if dt is None or self.decay not in ("exp", "exp_norm"):
            return params
        out = dict(params)
        if self.decay == "exp_norm":
            a = -np.expm1(-dt / np.asarray(params["tau"], dtype=np.float64))
            out["tau"] = dt / a
            if integrator:
                out["r"] = np.asarray(params["r"], dtype=np.float64) / a
            return out
        key = "tau" if "tau" in params else "tau_mem"
        tau_m = np.asarray(params[key], dtype=np.float64)
        alpha = np.exp(-dt / tau_m)
        a_m = 1.0 - alpha
        out[key] = dt / a_m
        out["r"] = np.asarray(params["r"], dtype=np.float64) * dt / (tau_m * alpha) / a_m
        if "tau_syn" in params:
            tau_s = np.asarray(params["tau_syn"], dtype=np.float64)
            beta = np.exp(-dt / tau_s)
            out["tau_syn"] = dt / (1.0 - beta)
            out["w_in"] = np.asarray(params["w_in"], dtype=np.float64) * beta / (1.0 - beta)
        return out

    def decode_dt(self, dt: Optional[float], source_dt: Optional[float] = None,
                  file_meta: Optional[Dict[str, Any]] = None) -> Optional[float]:
        """The dt that :meth:`convert_tau` decodes this framework's time constants with.

        ``tau_dt = "source"`` (Norse: the file holds tau times the dt given to its exporter): ``source_dt`` when
        given, else the file's metadata ``source_dt``, else the preset's own dt (the exporter's default) —
        never the target ``dt``, which only says at which step the graph runs. ``"target"`` (Sinabs: tau in
        time steps, whatever a step is): the target ``dt``.
        """
        if self.tau_dt != "source":
            return dt
        if source_dt is not None:
            return float(source_dt)
        meta = file_meta or {}
        if "source_dt" in meta:
            return float(np.asarray(meta["source_dt"]))
        return self.dt

    def convert_tau(self, tau: np.ndarray, dt: Optional[float]) -> np.ndarray:
        """Time constant in seconds from the value the framework wrote."""
        tau = np.asarray(tau, dtype=np.float64)
        if self.tau_unit == "s":
            return tau
        if dt is None:  # pragma: no cover - presets always have a dt
            raise NirImportError(f"preset '{self.name}' needs dt to convert tau", field="dt")
        return tau / dt if self.tau_unit == "s*dt" else tau * dt

    def convert_w_in(self, w_in: np.ndarray, tau_syn_s: np.ndarray, dt: Optional[float]) -> np.ndarray:
        """CubaLIF/CubaLI input weight for the IR's equation, from the written one (``tau_syn_s`` in seconds)."""
        w_in = np.asarray(w_in, dtype=np.float64)
        if self.w_in_rule == "as_is" or dt is None:
            return w_in
        return w_in * np.asarray(tau_syn_s, dtype=np.float64) / dt

    def scaling(self) -> Dict[str, str]:
        """The conversions this preset applies, as readable strings (recorded in the graph's metadata)."""
        tau = {"s": "tau as written (s)", "s*dt": "tau = tau_file / dt", "steps": "tau = tau_file * dt"}
        w = {"as_is": "w_in as written", "jump": "w_in = w_in_file * tau_syn / dt"}
        return {"tau": tau[self.tau_unit], "w_in": w[self.w_in_rule]}


PRESETS: Dict[str, Preset] = {
    "snntorch": Preset("snntorch", dt=1e-4, reset="subtract", reset_timing="snntorch",
                       summary="snnTorch 1.0: dt=1e-4, tau=dt/(1-beta), r=tau/dt, reset subtract applied one "
                               "step late"),
    "norse": Preset("norse", dt=1e-3, reset="zero", tau_unit="s*dt", w_in_rule="jump", tau_dt="source",
                    summary="Norse 1.1.0: dt=1e-3, file tau = tau*dt (dt given to to_nir: source_dt), LIFCell "
                            "current jumps by the input"),
    "sinabs": Preset("sinabs", dt=1.0, reset="subtract", tau_unit="steps", decay="exp_norm",
                     summary="Sinabs 3.1: tau in time steps (dt = 1 step), reset subtract, exact exponential decay "
                             "(LIF input scaled by 1 - alpha; rewritten as the equivalent Euler step)"),
    "rockpool": Preset("rockpool", dt=1e-3, reset="subtract", decay="exp",
                       summary="Rockpool 3.1: dt=1e-3, tau in s, reset subtract, exact exponential decay (rewritten "
                               "as the equivalent Euler step at dt)"),
    "lava": Preset("lava", dt=1e-4, reset="zero",
                   summary="Lava/Loihi: dt=1e-4 (NIR paper), tau in s, reset zero, current first"),
}


def get_preset(name: Optional[str]) -> Optional[Preset]:
    """The preset called ``name`` (case-insensitive), None for None; unknown names raise NirImportError."""
    if name is None:
        return None
    key = str(name).lower()
    if key not in PRESETS:
        raise NirImportError(f"unknown preset {name!r}; presets are {', '.join(PRESETS)}", field="preset")
    return PRESETS[key]


def resolve(preset: Optional[str], dt: Optional[float], reset: Optional[str]) -> Tuple[Optional[Preset],
                                                                                       Optional[float],
                                                                                       Optional[str]]:
    """Apply a preset's defaults to the ``dt``/``reset`` the user did not give (None stays None without one)."""
    p = get_preset(preset)
    if p is not None:
        dt = p.dt if dt is None else dt
        reset = p.reset if reset is None else reset
    return p, dt, reset
