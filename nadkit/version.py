"""nadkit's version, in a module of its own at the bottom of the layers, so that any module records
it in provenance without importing the package (and with it every layer)."""

__version__ = "0.1.0"
