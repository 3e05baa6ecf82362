"""Alarms and rules (ISA-18.2): rules on tags evaluated on the live stream, lifecycle, journal, notifications.

The engine lives in ``shopfloor.alarms.engine``; this package's root imports nothing heavy, because the
plant schema imports ``shopfloor.alarms.config``.
"""
