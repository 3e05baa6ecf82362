"""A small generated plant history: two steel lots machined into shafts on two CNCs, shafts packed into pallets."""

from __future__ import annotations

from shopfloor.apps.mes.service import Mes

CNC1, CNC2 = "vf/machining/line1/cell1/cnc1", "vf/machining/line1/cell2/cnc2"
T0 = 1_767_247_200_000_000_000  # 2026-01-01T06:00:00Z
S = 1_000_000_000


def build_plant(mes: Mes, shafts: int = 12) -> None:
    """Steel lot A feeds cnc1, lot B feeds cnc2; shafts alternate machines; every 4 shafts make a pallet."""
    mes.add_product("SHAFT", "Drive shaft", gtin="04012345000016")
    mes.add_product("PALLET", "Pallet of shafts")
    mes.add_material("STEEL", "Steel bar 42CrMo4", gtin="04012345000023")
    mes.add_routing("SHAFT", [("turn", CNC1, 48.0), ("grind", CNC2, 60.0)])
    mes.create_work_order("WO-1", "SHAFT", shafts)
    mes.create_lot("STEEL-A", T0, 500.0, material="STEEL")
    mes.create_lot("STEEL-B", T0, 500.0, material="STEEL")
    mes.logon(CNC1, "alice", T0 + 1 * S)
    mes.logon(CNC2, "bob", T0 + 2 * S)
    mes.material_load(CNC1, "STEEL-A", T0 + 3 * S, 500.0)
    mes.material_load(CNC2, "STEEL-B", T0 + 4 * S, 500.0)
    mes.machine_state(CNC1, T0 + 5 * S, "running")
    for i in range(shafts):
        machine = CNC1 if i % 2 == 0 else CNC2
        ts = T0 + (60 + 60 * i) * S
        mes.produce(f"SN-{i:04d}", machine, ts, work_order="WO-1", parameters={"spindle_load_pct": 60.0 + i})
        mes.inspect(f"SN-{i:04d}", ts + 10 * S, "diameter", 20.0 + (0.05 if i == 5 else 0.001 * i),
                    lower=19.98, upper=20.02, unit="mm")
    mes.machine_state(CNC1, T0 + 3000 * S, "down", "breakdown")
    mes.logoff(CNC1, "alice", T0 + 3100 * S)
    for p in range(shafts // 4):
        mes.create_lot(f"PAL-{p}", T0 + 4000 * S, 4, product="PALLET")
        mes.pack(f"PAL-{p}", [f"SN-{i:04d}" for i in range(4 * p, 4 * p + 4)], T0 + (4000 + p) * S)


