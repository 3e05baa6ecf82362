"""The exception hierarchy: every error shopfloor raises on purpose derives from ShopfloorError."""


class ShopfloorError(Exception):
    """Base of shopfloor's own errors."""


class NotReady(ShopfloorError):
    """A dependency (broker, database, device) is not reachable yet: retry with backoff."""


class DecodeError(ShopfloorError):
    """A payload that cannot be decoded; it goes to the dead letters with this message."""


class UnknownTag(ShopfloorError):
    """A tag path that the asset model does not know."""
