"""takedown: sinkhole, measure, notify and document botnet takedowns. Defensive only."""

__version__ = "0.1.0"
__all__ = ["__version__"]
