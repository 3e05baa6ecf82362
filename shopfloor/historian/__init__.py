"""The historian: durable raw samples, latest values, bucketed aggregates, retention."""

from shopfloor.historian.base import Buckets, Historian, open_historian

__all__ = ["Buckets", "Historian", "open_historian"]
