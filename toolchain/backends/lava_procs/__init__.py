"""Lava processes and process models of ours (kept in their own package: Lava searches the directory of a process
class's module, and the modules beside it, for its process models)."""
