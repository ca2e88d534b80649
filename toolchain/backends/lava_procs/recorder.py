"""Recorders that hand their whole record back through a file: ``SpikeRecorder`` (an OutPort's messages, like
Lava's ``io.sink.RingBuffer``) and ``VarRecorder`` (a Var read through a RefPort after every step, like Lava's
``Monitor``).

Why: in Lava 0.10.0, ``Var.get()`` sends an array *one element per channel message* from the process model to the
runtime service and on to the runtime (``magma/core/model/py/model.py`` L123-129, "FIXME: send a whole vector"),
about 50-70 us per value on two shared cores — reading the spikes, u and v of a network of a few hundred neurons
for a hundred steps takes longer than running it. These recorders keep the record in their model (the values
Lava's own processes sent or hold, nothing computed) and, once their last step has run, write it with
``numpy.save`` to ``path``, which the caller reads after ``run`` returns (``run`` blocks until every process
finished the step, the write included). They record ``steps`` steps; the run must not go beyond them. With
``select`` (a list of ``(lo, hi)`` entry ranges) a recorder keeps only those entries of each message, concatenated
in the order given (a batched network records the groups it needs out of a process that holds several).

Only absolute imports here: Lava's model search executes this file as a stand-alone module.
"""
import numpy as np

from lava.magma.core.decorator import implements, requires
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class SpikeRecorder(AbstractProcess):
    """Receives a (n,) message on ``a_in`` every step; writes the (steps, n) int64 record (or the ``select``ed
    entries) to ``path`` (.npy) after step ``steps``."""

    def __init__(self, *, shape, steps: int, path: str, select=None, **kwargs) -> None:
        super().__init__(shape=shape, steps=steps, path=path, select=select, **kwargs)
        self.a_in = InPort(shape=shape)


class VarRecorder(AbstractProcess):
    """Reads the Var it is connected to (:meth:`connect_var`) after every step (post-management phase, as Lava's
    Monitor); writes the (steps, n) int64 record (or the ``select``ed entries) to ``path`` (.npy) after step
    ``steps``."""

    def __init__(self, *, shape, steps: int, path: str, select=None, **kwargs) -> None:
        super().__init__(shape=shape, steps=steps, path=path, select=select, **kwargs)
        self.ref = RefPort(shape=shape)

    def connect_var(self, var) -> None:
        """Record ``var`` (a Var of the same shape)."""
        self.ref.connect_var(var)


class _Record:
    """The record of one recorder model: (steps, n) int64, written once the last step is in."""

    def _setup(self) -> None:
        if getattr(self, "_buf", None) is None:
            self._steps = int(self.proc_params["steps"])
            n = int(np.prod(self.proc_params["shape"]))
            self._sel = self.proc_params.get("select")
            width = n if self._sel is None else sum(int(hi) - int(lo) for lo, hi in self._sel)
            self._buf = np.zeros((self._steps, width), np.int64)

    def _store(self, values) -> None:
        self._setup()
        t = self.time_step - 1
        if 0 <= t < self._steps:
            values = np.asarray(values).reshape(-1)
            if self._sel is not None:
                values = np.concatenate([values[int(lo):int(hi)] for lo, hi in self._sel])
            self._buf[t] = values
        if t == self._steps - 1:
            np.save(self.proc_params["path"], self._buf)


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
class PySpikeRecorderModel(_Record, PyLoihiProcessModel):
    """Stores ``a_in`` of every step (spike phase)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)

    def run_spk(self) -> None:
        self._store(self.a_in.recv())


@implements(proc=VarRecorder, protocol=LoihiProtocol)
@requires(CPU)
class PyVarRecorderModel(_Record, PyLoihiProcessModel):
    """Stores the referenced Var after every step (post-management phase, after the neurons' update and reset)."""

    ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32, precision=24)

    def post_guard(self) -> bool:
        return True

    def run_post_mgmt(self) -> None:
        self._store(self.ref.read())
