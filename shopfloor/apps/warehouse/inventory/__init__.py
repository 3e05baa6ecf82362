"""The warehouse model: locations, stock by lot and location, append-only moves, orders and transport tasks.

Tables live in the MES database beside ``mes_material`` and ``mes_item`` (lots), which they reference:
a material or lot is one row whatever app looks at it.
"""

from shopfloor.apps.warehouse.inventory.db import open_warehouse_db
from shopfloor.apps.warehouse.inventory.models import LocationKind, OrderKind, TaskStatus
from shopfloor.apps.warehouse.inventory.stock import Inventory, StockError

__all__ = ["Inventory", "LocationKind", "OrderKind", "StockError", "TaskStatus", "open_warehouse_db"]
