"""Backends that run a compiled Program on other simulators or hardware toolchains (Lava)."""
