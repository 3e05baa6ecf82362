"""shopfloor: an industrial internet platform that runs on a laptop and in a plant."""

__version__ = "0.1.0"
