"""Neuromorphic deployment toolchain: PyTorch/NIR spiking networks to Loihi-style targets, bit-exact on Lava."""

__version__ = "0.1.0"
