"""Users, roles and API tokens: who may do what through the API.

The root imports nothing heavy: the plant schema imports ``shopfloor.auth.config``.
"""
