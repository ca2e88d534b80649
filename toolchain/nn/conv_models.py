"""Convolutional spiking networks for SCA channel pruning: a small VGG-style net and a residual net.

Both are built from :mod:`toolchain.nn` modules (``nn.Conv2d``, :class:`~toolchain.prune.sca.MaskedBatchNorm2d`,
:class:`~toolchain.nn.LIF`, :class:`~toolchain.nn.SumPool2d`, ``nn.Flatten``, ``nn.Linear``, :class:`~toolchain.nn.LI`)
and are :class:`~toolchain.nn.SpikingNet` containers: input ``(B, T, C, H, W)`` spikes (or currents), output
``(B, T, n_classes)`` readout membranes. Every conv is followed by a masked batch norm (the SCA mask sits *after*
BN) and a LIF layer; batch norm sees the ``B·T`` time-step frames of a batch at once.

Deployment: :func:`toolchain.prune.sca.deploy` slices the pruned channels out and folds the batch norms into the
convs; the result of :func:`vgg_snn` is then a plain ``SpikingNet`` of Conv2d/LIF/SumPool2d/Flatten/Linear/LI that
:func:`toolchain.nn.to_graph` exports. :class:`ResidualSpikingNet` exports itself (:meth:`ResidualSpikingNet.to_graph`).
The IR graph mirrors the torch model exactly: within a step the skip current and the conv path reach the block's
output neurons together. On hardware every synapse layer adds one step, so the skip path (one synapse) would arrive
a step before the conv path (two synapses); the compiler's latency equalisation (``compile_graph(...,
equalise_latency=True)``, the default) gives the skip synapses the extra delay, so no ``Delay`` node is exported.

Residual block (``SpikingResBlock``), per step t, voltage units:
``s1[t] = LIF1(BN1(conv1(x[t])))``, ``s[t] = LIF2(BN2(conv2(s1[t])) + skip(x[t]))`` with ``skip`` the identity
(same channel count and stride 1) or a 1×1 conv + BN (projection). With an identity skip the block's output
channels are the same channels as its input, so SCA prunes them together (:meth:`ResidualSpikingNet.sca_groups`).
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from .layers import SumPool2d
from .net import SpikingNet
from .neurons import LI, LIF, LIFState, SpikingNeuron

__all__ = ["vgg_snn", "SpikingResBlock", "ResBlockState", "ResidualSpikingNet", "resnet_snn", "conv_out_hw"]


def _bn(c: int, masked: bool) -> nn.Module:
    from ..prune.sca import MaskedBatchNorm2d
    return MaskedBatchNorm2d(c) if masked else nn.BatchNorm2d(c)


def conv_out_hw(h: int, w: int, k: int, stride: int, pad: int) -> Tuple[int, int]:
    """Spatial output size of a square conv/pool (no dilation)."""
    return (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1


def vgg_snn(in_shape: Sequence[int] = (1, 8, 8), channels: Sequence[int] = (32, 32, 64),
            pool_after: Sequence[int] = (1, 2), n_classes: int = 10, alpha: float = 0.9, threshold: float = 1.0,
            reset: str = "subtract", readout_alpha: float = 0.9, masked: bool = True, batchnorm: bool = True,
            kernel: int = 3, conv_gain: Optional[float] = None, seed: Optional[int] = None) -> SpikingNet:
    """A VGG-style conv SNN: ``[conv k×k (pad k//2) → BN → LIF] × len(channels)`` with a 2×2 SumPool2d after the
    conv blocks listed in ``pool_after`` (0-based), then Flatten → Linear → LI readout.

    ``in_shape``: (C, H, W) per step; ``alpha``/``threshold``/``reset``: LIF parameters (α per step, θ in voltage
    units); ``readout_alpha``: LI leak; ``masked``: MaskedBatchNorm2d (prunable) or plain BatchNorm2d;
    ``batchnorm=False`` leaves BN out (conv bias on instead; with ``masked`` the convs are
    :class:`~toolchain.prune.sca.MaskedConv2d` — the form STOP can train, since STOP routes errors through no BN).
    ``conv_gain``: factor on torch's default conv initialisation (default 1 with BN; 3 without, so that the
    first layers reach threshold from the start — without BN nothing rescales their currents). Module names: ``conv{i}``, ``bn{i}``, ``lif{i}``,
    ``pool{i}``, ``flatten``, ``fc``, ``readout``.
    """
    if seed is not None:
        torch.manual_seed(int(seed))
    c, h, w = (int(s) for s in in_shape)
    mods: "OrderedDict[str, nn.Module]" = OrderedDict()
    for i, co in enumerate(channels):
        if batchnorm or not masked:
            mods[f"conv{i}"] = nn.Conv2d(c, int(co), kernel, padding=kernel // 2, bias=not batchnorm)
        else:  # no BN: the SCA mask sits on the conv output (bias included)
            from ..prune.sca import MaskedConv2d
            mods[f"conv{i}"] = MaskedConv2d(c, int(co), kernel, padding=kernel // 2, bias=True)
        if batchnorm:
            mods[f"bn{i}"] = _bn(int(co), masked)
        c = int(co)
        h, w = conv_out_hw(h, w, kernel, 1, kernel // 2)
        mods[f"lif{i}"] = LIF((c, h, w), alpha=alpha, threshold=threshold, reset=reset)
        if i in pool_after:
            mods[f"pool{i}"] = SumPool2d(2)
            h, w = conv_out_hw(h, w, 2, 2, 0)
            if min(h, w) < 1:
                raise ValueError(f"vgg_snn: input {tuple(in_shape)} is too small for pooling after block {i}")
    mods["flatten"] = nn.Flatten(start_dim=1)
    mods["fc"] = nn.Linear(c * h * w, int(n_classes))
    mods["readout"] = LI(int(n_classes), alpha=readout_alpha)
    gain = (1.0 if batchnorm else 3.0) if conv_gain is None else float(conv_gain)
    if gain != 1.0:
        with torch.no_grad():
            for m in mods.values():
                if isinstance(m, nn.Conv2d):
                    m.weight.mul_(gain)
    return SpikingNet(mods)


# ================================================================================================ residual
class ResBlockState(NamedTuple):
    """State of a :class:`SpikingResBlock` after step t: output membrane/spikes ``u``/``s`` (B, C, H, W) and the
    inner layer's ``mid_u``/``mid_s``."""

    u: torch.Tensor
    s: torch.Tensor
    mid_u: torch.Tensor
    mid_s: torch.Tensor


class SpikingResBlock(SpikingNeuron):
    """A residual block of two conv → BN → LIF layers with an identity or projection skip (see module docstring).

    Stateful like a neuron module (``SpikingNet`` steps it through time): ``s, state = block(x, state)``.
    ``c_in``/``c_out`` channels, ``hw``: input (H, W); ``stride``: of the first conv (and the projection);
    LIF parameters as :class:`~toolchain.nn.LIF`. Children (registration order matters for BN folding):
    ``conv1, bn1, lif1, conv2, bn2, [skip_conv, skip_bn], lif2``.
    """

    _leak_names: Tuple[str, ...] = ()
    _threshold_names: Tuple[str, ...] = ()

    def __init__(self, c_in: int, c_out: int, hw: Sequence[int], stride: int = 1, alpha: float = 0.9,
                 threshold: float = 1.0, reset: str = "subtract", masked: bool = True) -> None:
        h, w = (int(v) for v in hw)
        ho, wo = conv_out_hw(h, w, 3, stride, 1)
        super().__init__((int(c_out), ho, wo), per_neuron=True)
        self.c_in, self.c_out, self.stride = int(c_in), int(c_out), int(stride)
        self.in_hw = (h, w)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _bn(c_out, masked)
        self.lif1 = LIF((c_out, ho, wo), alpha=alpha, threshold=threshold, reset=reset)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = _bn(c_out, masked)
        self.identity_skip = (c_in == c_out and stride == 1)
        if not self.identity_skip:
            self.skip_conv = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            self.skip_bn = _bn(c_out, masked)
        self.lif2 = LIF((c_out, ho, wo), alpha=alpha, threshold=threshold, reset=reset)

    def skip(self, x: torch.Tensor) -> torch.Tensor:
        """The skip current: ``x`` itself or ``BN(conv1x1(x))``."""
        if self.identity_skip:
            return x
        return self.skip_bn(self.skip_conv(x))

    def forward(self, x: torch.Tensor, state: Optional[ResBlockState] = None
                ) -> Tuple[torch.Tensor, ResBlockState]:
        if tuple(x.shape[1:]) != (self.c_in,) + self.in_hw:
            raise ValueError(f"SpikingResBlock expects input (B, {self.c_in}, {self.in_hw[0]}, {self.in_hw[1]}), "
                             f"got {tuple(x.shape)}")
        st1 = st2 = None
        if state is not None:
            st1, st2 = LIFState(state.mid_u, state.mid_s), LIFState(state.u, state.s)
        s1, st1 = self.lif1(self.bn1(self.conv1(x)), st1)
        s2, st2 = self.lif2(self.bn2(self.conv2(s1)) + self.skip(x), st2)
        return s2, ResBlockState(st2.u, st2.s, st1.u, st1.s)

    @torch.no_grad()
    def clamp_(self) -> "SpikingResBlock":
        self.lif1.clamp_()
        self.lif2.clamp_()
        return self

    def extra_repr(self) -> str:
        return (f"c_in={self.c_in}, c_out={self.c_out}, stride={self.stride}, "
                f"skip={'identity' if self.identity_skip else 'projection'}")

    # ------------------------------------------------------------------------------------ SCA slicing
    def sca_slice(self, flow: Any) -> Tuple["SpikingResBlock", Any]:
        """Slice this block given the kept input channels (``flow``, see :func:`toolchain.prune.sca.slice_sequence`);
        returns the smaller block and the kept output channels."""
        from ..prune import sca as S
        keep_in = flow.keep if flow.keep is not None else torch.arange(self.c_in)
        keep_mid = self.bn1.kept if isinstance(self.bn1, S.MaskedBatchNorm2d) else torch.arange(self.c_out)
        keep_out = self.bn2.kept if isinstance(self.bn2, S.MaskedBatchNorm2d) else torch.arange(self.c_out)
        if keep_mid.numel() == 0 or keep_out.numel() == 0:
            raise S.SCAError("every channel of a residual block layer is pruned", field="channel_mask")
        new = copy.deepcopy(self)
        new.conv1 = S._slice_conv_out(S._slice_conv_in(self.conv1, keep_in), keep_mid)
        new.bn1 = S._slice_bn(self.bn1, keep_mid)
        new.lif1 = S._slice_neuron(self.lif1, keep_mid)
        new.conv2 = S._slice_conv_out(S._slice_conv_in(self.conv2, keep_mid), keep_out)
        new.bn2 = S._slice_bn(self.bn2, keep_out)
        if self.identity_skip:
            if not torch.equal(keep_in, keep_out):
                raise S.SCAError("identity skip needs the same kept channels at the block's input and output; "
                                 "tie them in one ChannelGroup", field="channel_mask")
        else:
            new.skip_conv = S._slice_conv_out(S._slice_conv_in(self.skip_conv, keep_in), keep_out)
            new.skip_bn = S._slice_bn(self.skip_bn, keep_out)
        new.lif2 = S._slice_neuron(self.lif2, keep_out)
        new.c_in, new.c_out = int(keep_in.numel()), int(keep_out.numel())
        new.shape = (new.c_out,) + tuple(self.shape[1:])
        return new, S._Flow(keep_out, self.c_out)


class ResidualSpikingNet(SpikingNet):
    """A :class:`SpikingNet` whose children may include :class:`SpikingResBlock` s; knows its SCA channel ties
    (:meth:`sca_groups`) and exports itself to the IR (:meth:`to_graph`)."""

    def sca_groups(self) -> List[Any]:
        """Channel groups for SCA: each block's inner layer alone; each identity-skip block's output tied to the
        channels feeding it (a stem conv or the previous block's output); a projection block starts a new tie."""
        from ..prune.sca import ChannelGroup, ChannelMasked, MaskedBatchNorm2d
        groups: List[ChannelGroup] = []
        current: Optional[Tuple[List[str], List[str], List[Tuple[str, str]]]] = None  # the running tie
        names = list(self.named_children())

        def close() -> None:
            if current is not None and current[0]:
                groups.append(ChannelGroup(tuple(current[0]), tuple(current[1]), current[0][0],
                                           tuple(current[2])))

        for i, (name, m) in enumerate(names):
            if isinstance(m, MaskedBatchNorm2d):
                close()
                neuron = next(n for n, mm in names[i + 1:] if isinstance(mm, (LIF, SpikingResBlock)))
                current = ([name], [neuron], [(neuron, "u")])
            elif isinstance(m, SpikingResBlock):
                if isinstance(m.bn1, MaskedBatchNorm2d):
                    groups.append(ChannelGroup((f"{name}.bn1",), (f"{name}.lif1",), f"{name}.bn1",
                                               ((name, "mid_u"),)))
                if m.identity_skip and current is not None:
                    current[0].append(f"{name}.bn2")
                    current[1].append(f"{name}.lif2")
                    current[2].append((name, "u"))
                else:
                    close()
                    bns = [f"{name}.bn2"] + ([] if m.identity_skip else [f"{name}.skip_bn"])
                    current = (bns, [f"{name}.lif2"], [(name, "u")])
            elif isinstance(m, (nn.Linear, nn.Flatten)):
                close()
                current = None
        close()
        return [g for g in groups if all(isinstance(self.get_submodule(b), ChannelMasked) for b in g.layers)]

    def to_graph(self, dt: float, input_shape: Sequence[int]):
        """The IR graph of this network (batch norm must be folded first: :func:`toolchain.prune.sca.deploy`).

        Sequential modules map as :func:`toolchain.nn.to_graph` maps them; a block becomes
        ``conv1 → lif1 → conv2 → lif2`` plus a skip ``x → (identity 1×1 conv | skip_conv) → lif2`` (the two
        inputs of ``lif2`` are summed, as in the torch block; the compiler equalises their hardware latency).
        """
        from ..ir import nodes as N
        from ..ir.graph import Graph
        from .nir_map import to_graph as seq_to_graph

        def single(m: nn.Module, name: str, shape: Tuple[int, ...]) -> N.Node:
            g = seq_to_graph(SpikingNet(OrderedDict([(name, m)])), dt, shape)
            node = next(n for n in g.nodes.values() if not isinstance(n, (N.Input, N.Output)))
            return node.replace(name=name)

        shape = tuple(int(s) for s in input_shape)
        nodes: List[N.Node] = [N.Input("input", shape=shape)]
        edges: List[Tuple[str, str]] = []
        prev = "input"
        for name, m in self.named_children():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                raise ValueError(f"module '{name}': fold batch norm before export (toolchain.prune.sca.deploy)")
            if isinstance(m, SpikingResBlock):
                for sub in ("bn1", "bn2", "skip_bn"):
                    if isinstance(getattr(m, sub, None), nn.modules.batchnorm._BatchNorm):
                        raise ValueError(f"module '{name}.{sub}': fold batch norm before export")
                c1 = single(m.conv1, f"{name}_conv1", shape)
                l1 = single(m.lif1, f"{name}_lif1", c1.out_shape)
                c2 = single(m.conv2, f"{name}_conv2", l1.out_shape)
                l2 = single(m.lif2, f"{name}_lif2", c2.out_shape)
                if m.identity_skip:
                    eye = np.zeros((shape[0], shape[0], 1, 1))
                    eye[np.arange(shape[0]), np.arange(shape[0])] = 1.0
                    sk = N.Conv2d(f"{name}_skip", weight=eye, input_shape=shape)
                else:
                    sk = single(m.skip_conv, f"{name}_skip", shape)
                nodes += [c1, l1, c2, l2, sk]
                edges += [(prev, c1.name), (c1.name, l1.name), (l1.name, c2.name), (c2.name, l2.name),
                          (prev, sk.name), (sk.name, l2.name)]
                prev, shape = l2.name, l2.out_shape
                continue
            node = single(m, name, shape)
            nodes.append(node)
            edges.append((prev, node.name))
            prev, shape = node.name, node.out_shape
        nodes.append(N.Output("output", shape=shape))
        edges.append((prev, "output"))
        return Graph(nodes, edges, dt=float(dt), metadata={"source": "ResidualSpikingNet.to_graph"})


def resnet_snn(in_shape: Sequence[int] = (1, 8, 8), stem_channels: int = 16,
               stages: Sequence[Tuple[int, int]] = ((16, 1), (32, 2)), n_classes: int = 10, alpha: float = 0.9,
               threshold: float = 1.0, reset: str = "subtract", readout_alpha: float = 0.9, masked: bool = True,
               seed: Optional[int] = None) -> ResidualSpikingNet:
    """A residual conv SNN: stem (conv 3×3 → BN → LIF), one :class:`SpikingResBlock` per ``(channels, stride)`` in
    ``stages``, then Flatten → Linear → LI readout. Names: ``stem_conv``, ``stem_bn``, ``stem_lif``, ``block{i}``,
    ``flatten``, ``fc``, ``readout``."""
    if seed is not None:
        torch.manual_seed(int(seed))
    c, h, w = (int(s) for s in in_shape)
    mods: "OrderedDict[str, nn.Module]" = OrderedDict()
    mods["stem_conv"] = nn.Conv2d(c, stem_channels, 3, padding=1, bias=False)
    mods["stem_bn"] = _bn(stem_channels, masked)
    mods["stem_lif"] = LIF((stem_channels, h, w), alpha=alpha, threshold=threshold, reset=reset)
    c = stem_channels
    for i, (co, stride) in enumerate(stages):
        blk = SpikingResBlock(c, int(co), (h, w), stride=int(stride), alpha=alpha, threshold=threshold, reset=reset,
                              masked=masked)
        mods[f"block{i}"] = blk
        c, h, w = blk.shape
    mods["flatten"] = nn.Flatten(start_dim=1)
    mods["fc"] = nn.Linear(c * h * w, int(n_classes))
    mods["readout"] = LI(int(n_classes), alpha=readout_alpha)
    return ResidualSpikingNet(mods)
