"""Export of the traceability events as a GS1 EPCIS 2.0 JSON-LD document, validated against the GS1 schema.

Which MES event becomes which EPCIS event:

* ``produced`` -> TransformationEvent (bizStep commissioning): its inputs (serials in
  ``inputEPCList``, lots in ``inputQuantityList``) became the item (``outputEPCList`` or
  ``outputQuantityList``); disposition conformant (good) or non_conformant (scrap). Made from
  nothing recorded, it is an ObjectEvent ADD instead.
* ``packed`` -> AggregationEvent ADD (bizStep packing): the lot is the parent, the items the children.
* ``inspection`` -> ObjectEvent OBSERVE (bizStep inspecting), conformant or non_conformant.

Machine states, log-ons and counts are not business events of objects and stay out. Items of a
product or material with a GTIN get GS1 Digital Link ids (``https://id.gs1.org/01/<gtin>/21/<serial>``,
lots as classes ``.../10/<lot>``); others ``urn:shopfloor:...`` ids. Each event carries its place
and hash in the tamper-evident record (``sf:seq``, ``sf:hash``) and, where known, the operator,
work order and the event's payload, as extension fields of the ``sf:`` JSON-LD namespace.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from jsonschema import Draft7Validator, FormatChecker
from sqlalchemy import Engine, text

SCHEMA_PATH = Path(__file__).parent / "schemas" / "epcis-json-schema.json"
EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
SF_NAMESPACE = "urn:shopfloor:epcis:"
EXPORTED_KINDS = ("produced", "packed", "inspection")
UOM = {"kg": "KGM", "g": "GRM", "t": "TNE", "m": "MTR", "l": "LTR", "pcs": "H87"}  # UN/CEFACT Rec. 20 codes
_EVENT_NS = uuid.UUID("6f1d3c2a-9a55-4d1e-8f1e-5b0c1d2e3f40")  # names event ids: uuid5(site:seq)

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$")  # RFC 3986 absolute URI: a scheme, no whitespace
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")  # RFC 3339


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(SCHEMA_PATH.read_bytes())
    return loaded


def _format_checker() -> FormatChecker:
    """jsonschema checks 'uri' and 'date-time' only with optional packages; these two checks do it here."""
    checker = FormatChecker()
    checker.checks("uri")(lambda value: not isinstance(value, str) or bool(_URI.match(value)))

    def date_time(value: object) -> bool:
        if not isinstance(value, str) or not _DATE_TIME.match(value):
            return not isinstance(value, str)
        try:
            datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            return False
        return True

    checker.checks("date-time")(date_time)
    return checker


def validate(document: dict[str, Any]) -> list[str]:
    """Schema errors of an EPCIS document or event (empty when it validates), each with its JSON path."""
    validator = Draft7Validator(schema(), format_checker=_format_checker())
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))]


def iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Ids:
    """EPC URIs of items and read points, from the item's product or material (and its GTIN)."""

    def __init__(self, engine: Engine, site: str) -> None:
        self.site = site
        with engine.connect() as conn:
            self.items = {
                int(r[0]): (str(r[1]), str(r[2]), r[3] or r[4], r[5] or r[6] or "pcs", float(r[7]))
                for r in conn.execute(text(
                    "SELECT i.id, i.code, i.kind, p.gtin, m.gtin, p.unit, m.unit, i.quantity FROM mes_item i "
                    "LEFT JOIN mes_product p ON p.id = i.product_id LEFT JOIN mes_material m ON m.id = i.material_id"
                ))
            }
            self.equipment = {int(i): str(p) for i, p in conn.execute(text("SELECT id, path FROM mes_equipment"))}

    def epc(self, item_id: int) -> str:
        code, kind, gtin, _, _ = self.items[item_id]
        if gtin:
            return f"https://id.gs1.org/01/{gtin.zfill(14)}/{'21' if kind == 'serial' else '10'}/{quote(code, safe='')}"
        return f"urn:shopfloor:{quote(self.site, safe='')}:{kind}:{quote(code, safe='')}"

    def is_serial(self, item_id: int) -> bool:
        return self.items[item_id][1] == "serial"

    def quantity(self, item_id: int, qty: float) -> dict[str, Any]:
        out: dict[str, Any] = {"epcClass": self.epc(item_id), "quantity": qty}
        uom = UOM.get(self.items[item_id][3])
        if uom and uom != "H87":
            out["uom"] = uom
        return out

    def read_point(self, equipment_id: int | None) -> dict[str, str] | None:
        if equipment_id is None or equipment_id not in self.equipment:
            return None
        return {"id": f"urn:shopfloor:{quote(self.site, safe='')}:equipment:{quote(self.equipment[equipment_id])}"}


def export_document(
    engine: Engine, *, site: str = "site", item_ids: Iterable[int] | None = None, since_seq: int = 0,
    until_seq: int | None = None,
) -> dict[str, Any]:
    """An EPCISDocument of the traceability events (of the given items only, if item_ids is given)."""
    ids = _Ids(engine, site)
    wanted = set(item_ids) if item_ids is not None else None
    sql = (
        "SELECT seq, ts_ns, kind, item_id, equipment_id, operator, work_order_id, payload, hash FROM mes_event "
        "WHERE seq > :since AND seq <= :until AND kind IN ('produced', 'packed', 'inspection') ORDER BY seq"
    )
    events = []
    with engine.connect() as conn:
        rows = conn.execute(text(sql), {"since": since_seq, "until": until_seq if until_seq is not None else 2**62})
        for seq, ts_ns, kind, item_id, eq, operator, wo, payload, h in rows:
            if item_id is None or (wanted is not None and item_id not in wanted):
                continue
            events.append(_event(ids, int(seq), int(ts_ns), str(kind), int(item_id), eq, operator, wo,
                                 orjson.loads(payload), bytes(h)))
    return {
        "@context": [EPCIS_CONTEXT, {"sf": SF_NAMESPACE}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": iso(int(datetime.now(UTC).timestamp() * 1e9)),
        "epcisBody": {"eventList": events},
    }


def _event(
    ids: _Ids, seq: int, ts_ns: int, kind: str, item_id: int, equipment_id: int | None, operator: str | None,
    work_order_id: int | None, payload: dict[str, Any], chain_hash: bytes,
) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "eventID": f"urn:uuid:{uuid.uuid5(_EVENT_NS, f'{ids.site}:{seq}')}",
        "eventTime": iso(ts_ns),
        "eventTimeZoneOffset": "+00:00",
    }
    inputs = [(int(i), float(q)) for i, q in payload.get("inputs", [])]
    if kind == "produced" and inputs:
        ev["type"] = "TransformationEvent"
        serials = [ids.epc(i) for i, _ in inputs if ids.is_serial(i)]
        lots = [ids.quantity(i, q) for i, q in inputs if not ids.is_serial(i)]
        if serials:
            ev["inputEPCList"] = serials
        if lots:
            ev["inputQuantityList"] = lots
        _output(ids, ev, item_id, "outputEPCList", "outputQuantityList")
        ev["bizStep"] = "commissioning"
        ev["disposition"] = "conformant" if payload.get("quality", "good") == "good" else "non_conformant"
    elif kind == "produced":
        ev["type"] = "ObjectEvent"
        ev["action"] = "ADD"
        _output(ids, ev, item_id, "epcList", "quantityList")
        ev["bizStep"] = "commissioning"
        ev["disposition"] = "conformant" if payload.get("quality", "good") == "good" else "non_conformant"
    elif kind == "packed":
        ev["type"] = "AggregationEvent"
        ev["action"] = "ADD"
        ev["parentID"] = ids.epc(item_id)
        children = [ids.epc(i) for i, _ in inputs if ids.is_serial(i)]
        classes = [ids.quantity(i, q) for i, q in inputs if not ids.is_serial(i)]
        if children:
            ev["childEPCs"] = children
        if classes:
            ev["childQuantityList"] = classes
        ev["bizStep"] = "packing"
    else:  # inspection
        ev["type"] = "ObjectEvent"
        ev["action"] = "OBSERVE"
        _output(ids, ev, item_id, "epcList", "quantityList")
        ev["bizStep"] = "inspecting"
        ev["disposition"] = "conformant" if payload.get("passed") else "non_conformant"
    read_point = ids.read_point(equipment_id)
    if read_point:
        ev["readPoint"] = read_point
    ev["sf:seq"] = seq
    ev["sf:hash"] = chain_hash.hex()
    if operator:
        ev["sf:operator"] = operator
    if work_order_id is not None:
        ev["sf:workOrder"] = work_order_id
    extra = {k: v for k, v in payload.items() if k != "inputs"}
    if extra:
        ev["sf:data"] = extra
    return ev


def _output(ids: _Ids, ev: dict[str, Any], item_id: int, epc_key: str, quantity_key: str) -> None:
    if ids.is_serial(item_id):
        ev[epc_key] = [ids.epc(item_id)]
    else:
        ev[quantity_key] = [ids.quantity(item_id, ids.items[item_id][4])]
