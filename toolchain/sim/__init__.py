"""Simulators: the float executor of the IR and the reference integer simulator of a Program."""
