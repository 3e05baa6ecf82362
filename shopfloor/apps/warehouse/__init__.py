"""Warehouse and AGV fleet: multi-agent path finding (``mapf``), fleet and vehicle interface (``fleet``)."""
