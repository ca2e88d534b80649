"""Error types. Every error names what it is about (file, node, field, limit) in one readable line."""
from __future__ import annotations

from typing import Optional


class ToolchainError(Exception):
    """Base class of all errors the toolchain raises on bad input.

    The CLI prints ``str(error)`` as one line and exits non-zero; ``--debug`` shows the traceback.
    """

    def __init__(self, message: str, *, file: Optional[str] = None, node: Optional[str] = None,
                 field: Optional[str] = None) -> None:
        self.file = file
        self.node = node
        self.field = field
        self.message = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.file:
            where.append(f"file '{self.file}'")
        if self.node:
            where.append(f"node '{self.node}'")
        if self.field:
            where.append(f"field '{self.field}'")
        return (", ".join(where) + ": " + self.message) if where else self.message


class GraphError(ToolchainError, ValueError):
    """An inconsistent graph or node: a bad field, a shape mismatch, an edge to a missing node."""


class NirImportError(ToolchainError):
    """A NIR file or graph that cannot be read or mapped onto the IR."""


class QuantisationError(ToolchainError, ValueError):
    """A parameter that cannot be represented in the target's integer format."""


class ResourceError(ToolchainError):
    """A network that does not fit the target: names the layer, the resource, the need and the limit."""


class InputError(ToolchainError, ValueError):
    """An input array of the wrong shape, dtype or range."""
