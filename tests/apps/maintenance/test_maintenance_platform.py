"""Integration: the virtual factory, fast-forward through a real broker into a real platform, until a spindle
bearing fails; the maintenance alarm and the work order must come before the failure, and the API lists it.

One CNC whose bearing lives about an hour (Weibull scale 1 h at rated speed, instead of the line's 30 h), so
that a whole life, from a sound bearing through the developing fault to the failure, takes a few thousand
steps. The alarm and the work order use limits scaled the same way (RUL lower bound under 0.3 h). The RUL
interval is the calibrated one (rulinterval.py), learnt first from simulated lives of the same CNC with other
seeds (2-4; 5-6 held out for its metrics), as a plant would learn it from its past failures.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from shopfloor.api import create_app
from shopfloor.apps.maintenance import simlives, training
from shopfloor.apps.maintenance.config import ModelChoice
from shopfloor.apps.maintenance.service import MaintenanceService
from shopfloor.platform import Platform
from shopfloor.sim.factory import VirtualFactory
from shopfloor.sim.machines import REASON_BEARING, CncParams
from shopfloor.sim.publisher import FactoryPublisher
from shopfloor.sim.vibration import VibrationExtension, VibrationParams
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for

SEED = 1
CNC = CncParams(bearing_life_h=1.0)
HEALTH = "virtual-factory/machining/line1/cell1/cnc1-health"
EQUIPMENT = "virtual-factory/machining/line1/cell1/cnc1"


class FailureWatch:
    """A factory extension of the test: the sim time at which the CNC's bearing fails (ground truth)."""

    name = "failure-watch"

    def __init__(self) -> None:
        self.failed_ns: int | None = None
        self.event = threading.Event()

    def extend_plant(self, plant: dict[str, Any]) -> None:
        pass

    def on_step(self, factory: VirtualFactory) -> None:
        if self.failed_ns is None and factory.cncs[0].reason == REASON_BEARING:
            self.failed_ns = factory.now_ns
            self.event.set()

    def start(self, broker: object) -> None:
        pass

    def stop(self) -> None:
        pass


def test_alarm_and_work_order_before_the_bearing_fails(mosquitto: Mosquitto, tmp_path: Path) -> None:
    vibration = VibrationExtension(SEED, cncs=(CNC,), params=VibrationParams(every_s=20.0), alarm_rul_h=0.3,
                                   work_order_margin_h=0.05)
    watch = FailureWatch()
    start_ns = (time.time_ns() - 3 * 3600 * 10**9) // 10**9 * 10**9  # history in the past, as a backfill
    factory = VirtualFactory(seed=SEED, start_ns=start_ns, step_s=2.0, cncs=(CNC,), extensions=[vibration, watch])
    config = factory.plant_config()
    assert config.maintenance is not None and config.maintenance.machines[0].health == HEALTH
    t_train = time.monotonic()
    meta = training.train_rul_interval_sim(
        tmp_path / "models", calibration=simlives.SimLivesParams((2, 3, 4), hours=30.0, cncs=(CNC,)),
        held_out=simlives.SimLivesParams((5, 6), hours=30.0, cncs=(CNC,)), every_h=1 / 60, bins=5,
        report_edges_h=(0.25, 0.5), alarm_h=0.3, name="rul-interval-cnc1")
    print(f"\ncalibration learnt in {time.monotonic() - t_train:.1f} s:", training.summary(meta))
    choice = ModelChoice(name="rul-interval-cnc1", version=meta.version)  # root: <data_dir>/models
    config = config.model_copy(update={"maintenance": config.maintenance.model_copy(update={"rul_interval": choice})})
    platform = Platform(config, data_dir=tmp_path, broker_url=mosquitto.url)
    platform.start()
    alarms: list[dict[str, Any]] = []
    platform.alarms.listen(lambda e: alarms.append(e) if e["rule"] == "cnc1-bearing-rul" else None)
    publisher = FactoryPublisher(factory, mosquitto.host, mosquitto.port, speed=0)
    t0 = time.monotonic()
    try:
        publisher.start()
        assert watch.event.wait(120), "the bearing did not fail within the run"
        publisher.stop()
        failed_ns = watch.failed_ns
        assert failed_ns is not None
        service = platform.service("maintenance")
        assert isinstance(service, MaintenanceService)
        assert service.health()["rul_interval"]["calibrated"] is True
        # Everything published is analysed: windows up to the failure, trend points up to it.
        wait_for(lambda: (service.machine_views()[0]["updated_ns"] or 0) >= failed_ns - 120 * 10**9, timeout=60)
        print(f"\n{(failed_ns - start_ns) / 3.6e12:.2f} h of sim time in {time.monotonic() - t0:.1f} s;",
              service.health())

        assert platform.alarms.errors == 0, platform.alarms.last_error  # NaN RUL before a trend is no error
        raised = [e for e in alarms if e["event"] == "activated"]
        assert raised, f"no maintenance alarm before the failure; events {alarms}"
        lead_h = (failed_ns - raised[0]["ts_ns"]) / 3.6e12
        assert lead_h > 0, f"the maintenance alarm came {-lead_h:.2f} h after the failure"

        with ApiServer(create_app(platform, manage_lifecycle=False)) as api:
            orders = httpx.get(f"{api.url}/api/maintenance/work-orders", timeout=30).json()
            machines = httpx.get(f"{api.url}/api/maintenance/machines", timeout=30).json()
        assert len(orders) == 1, orders  # one order for one developing fault
        order = orders[0]
        assert order["equipment"] == EQUIPMENT
        assert order["created_ns"] < failed_ns, "the work order came after the failure"
        assert order["due_ns"] <= order["predicted_failure_ns"] and order["due_ns"] <= failed_ns
        fault = {"inner": "inner race", "outer": "outer race", "ball": "ball"}[vibration.fault_of("cnc1") or ""]
        assert order["fault"] == fault and order["confidence"] > 0.5
        assert machines["machines"][0]["fault_label"] == fault
        # The derived tags are history like any tag: the health index falls, the RUL trend is there to plot.
        hist = platform.historian
        health = hist.raw(platform.tag_index.id_of(f"{HEALTH}/health_index"), start_ns, failed_ns)
        low = hist.raw(platform.tag_index.id_of(f"{HEALTH}/rul_low"), start_ns, failed_ns)
        assert health.value[0] > 90 > 30 > health.value[-1]
        assert (low.value[np.isfinite(low.value)] < 0.3).any()
        print(f"alarm {lead_h:.2f} h before the failure; work order {order['number']} created "
              f"{(failed_ns - order['created_ns']) / 3.6e12:.2f} h before it: {order['fault']}")
    finally:
        publisher.stop()
        platform.stop()
