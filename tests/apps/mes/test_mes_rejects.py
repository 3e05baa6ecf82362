"""Parts counted good by their machine but rejected by a later inspection: the record's disposition per
serial, and the count per machine and period that OEE moves from good to scrap."""

from __future__ import annotations

from mes_plant import CNC1, CNC2, T0, S

from shopfloor.apps.mes.rejects import rejected, rejected_by_machine
from shopfloor.apps.mes.service import Mes

END = T0 + 4000 * S  # build_plant makes 12 shafts between T0 + 60 s and T0 + 720 s


def check(characteristic: str, passed: bool, supersedes: str | None = None) -> dict[str, object]:
    r: dict[str, object] = {"characteristic": characteristic, "passed": passed}
    if supersedes:
        r["supersedes"] = supersedes
    return r


def test_the_latest_result_of_each_characteristic_stands() -> None:
    assert not rejected([])
    assert rejected([check("diameter", True), check("surface", False)])
    assert not rejected([check("diameter", False), check("diameter", True)])  # measured again: in tolerance
    assert rejected([check("diameter", True), check("diameter", False)])


def test_a_review_replaces_the_check_it_names() -> None:
    camera_fail = check("visual-anomaly", False)
    assert not rejected([camera_fail, check("visual-review", True, supersedes="visual-anomaly")])
    assert rejected([camera_fail, check("visual-review", False, supersedes="visual-anomaly")])
    # A later automatic result stands again over the earlier review.
    assert rejected([camera_fail, check("visual-review", True, "visual-anomaly"), check("visual-anomaly", False)])
    # The review disposes of its own characteristic only.
    assert rejected([check("diameter", False), check("visual-review", True, supersedes="visual-anomaly")])


def test_rejected_parts_are_counted_against_the_machine_and_period_they_were_made_in(mes: Mes) -> None:
    # build_plant: SN-0005 (made on cnc2 at T0 + 360 s) is out of its diameter tolerance.
    assert rejected_by_machine(mes.engine, [CNC1, CNC2], T0, END) == {CNC1: 0, CNC2: 1}
    assert rejected_by_machine(mes.engine, [CNC2], T0 + 361 * S, END) == {CNC2: 0}  # made before the period
    mes.inspect("SN-0002", END, "surface", 3.0, upper=1.0)  # found later: still the period it was made in
    assert rejected_by_machine(mes.engine, [CNC1, CNC2], T0, END) == {CNC1: 1, CNC2: 1}
    mes.inspect("SN-0002", END + S, "surface-review", 0.0, upper=0.5, supersedes="surface")
    assert rejected_by_machine(mes.engine, [CNC1, CNC2], T0, END) == {CNC1: 0, CNC2: 1}
    # A part the machine itself called scrap is in its scrap counter already: not counted twice.
    mes.produce("SN-X", CNC1, T0 + 800 * S, work_order="WO-1", good=False)
    mes.inspect("SN-X", T0 + 810 * S, "diameter", 25.0, upper=20.02)
    assert rejected_by_machine(mes.engine, [CNC1], T0, END) == {CNC1: 0}
    assert rejected_by_machine(mes.engine, [], T0, END) == {}
    assert rejected_by_machine(mes.engine, [CNC1], END, T0) == {CNC1: 0}
