"""EPCIS 2.0 export validates against the vendored GS1 JSON schema; broken documents do not."""

from __future__ import annotations

import copy

from shopfloor.apps.mes.epcis import export_document, schema, validate
from shopfloor.apps.mes.genealogy import trace
from shopfloor.apps.mes.service import Mes


def test_vendored_schema_is_the_gs1_bundle() -> None:
    s = schema()
    assert s["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert {"ObjectEvent", "AggregationEvent", "TransformationEvent", "epcisDocument"} <= set(s["definitions"])


def test_export_validates_and_maps_events(mes: Mes) -> None:
    doc = export_document(mes.engine, site="plant-1")
    assert validate(doc) == []
    events = doc["epcisBody"]["eventList"]
    kinds = [e["type"] for e in events]
    assert kinds.count("TransformationEvent") == 12
    assert kinds.count("ObjectEvent") == 12  # inspections
    assert kinds.count("AggregationEvent") == 3
    first = next(e for e in events if e["type"] == "TransformationEvent")
    assert first["inputQuantityList"] == [
        {"epcClass": "https://id.gs1.org/01/04012345000023/10/STEEL-A", "quantity": 1.0, "uom": "KGM"}
    ]
    assert first["outputEPCList"] == ["https://id.gs1.org/01/04012345000016/21/SN-0000"]
    assert first["sf:operator"] == "alice"
    assert first["readPoint"]["id"].startswith("urn:shopfloor:plant-1:equipment:vf/machining/line1/cell1/cnc1")
    pallet = next(e for e in events if e["type"] == "AggregationEvent")
    assert pallet["parentID"] == "urn:shopfloor:plant-1:lot:PAL-0"  # PALLET has no GTIN
    assert len(pallet["childEPCs"]) == 4
    failed = [e for e in events if e.get("bizStep") == "inspecting" and e["disposition"] == "non_conformant"]
    assert len(failed) == 1 and failed[0]["epcList"] == ["https://id.gs1.org/01/04012345000016/21/SN-0005"]
    assert len({e["eventID"] for e in events}) == len(events)


def test_export_of_a_trace_only(mes: Mes) -> None:
    tr = trace(mes.engine, "SN-0003", "backward")
    doc = export_document(mes.engine, item_ids=tr.nodes.keys())
    assert validate(doc) == []
    assert [e["type"] for e in doc["epcisBody"]["eventList"]] == ["TransformationEvent", "ObjectEvent"]


def test_schema_catches_broken_documents(mes: Mes) -> None:
    doc = export_document(mes.engine)
    for breakage in (
        lambda d: d["epcisBody"]["eventList"][0].pop("eventTime"),
        lambda d: d["epcisBody"]["eventList"][0].update(eventTimeZoneOffset="UTC"),
        lambda d: d["epcisBody"]["eventList"][0].update(action="MOVE"),
        lambda d: d["epcisBody"]["eventList"][0].update(outputEPCList=["not a uri"]),
        lambda d: d["epcisBody"]["eventList"][0].update(eventTime="yesterday"),
        lambda d: d.pop("@context"),
    ):
        broken = copy.deepcopy(doc)
        breakage(broken)
        assert validate(broken), breakage
