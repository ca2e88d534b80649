"""The ``snnc`` command line: a thin layer over the Python API."""
