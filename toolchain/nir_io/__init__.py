"""NIR import and export: ``load`` (NIR file or graph -> IR), ``export`` (IR -> NIR), ``PRESETS`` (per-framework
conventions: dt, reset mode, tau units, executor options; see :mod:`toolchain.nir_io.presets`)."""
from .export import export
from .load import NIR_TYPES, NirImportWarning, load
from .presets import PRESETS, Preset, get_preset

__all__ = ["load", "export", "PRESETS", "Preset", "get_preset", "NirImportWarning", "NIR_TYPES"]
