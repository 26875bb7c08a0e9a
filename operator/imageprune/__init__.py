"""imageprune: declarative, safe, observable cleanup of unused container images."""

__version__ = "0.1.0"
