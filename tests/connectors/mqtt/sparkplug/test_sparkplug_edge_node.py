"""EdgeNode against a real mosquitto: births, seq, bdSeq, rebirth, deaths (clean and not)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import numpy as np
import pytest
from sparkplug_observer import Observer

from shopfloor.connectors.mqtt.sparkplug import (
    BDSEQ,
    REBIRTH,
    DataType,
    DecodedPayload,
    EdgeNode,
    MetricSpec,
    encode_data,
    encode_rebirth_request,
)
from shopfloor.core.errors import NotReady
from shopfloor.core.net import free_port
from shopfloor.testing.mosquitto import Mosquitto

NODE_METRICS = [MetricSpec("Node/Uptime", DataType.Int64, 1)]
CNC = [
    MetricSpec("Spindle/Speed", DataType.Double, 10),
    MetricSpec("Spindle/Load", DataType.Float, 11),
    MetricSpec("Parts", DataType.UInt32, 12),
    MetricSpec("Running", DataType.Boolean, 13),
]
ROBOT = [MetricSpec("Axis1/Angle", DataType.Double, 20), MetricSpec("Mode", DataType.Int16, 21)]

Cleanup = Callable[[Callable[[], None]], None]


def _node(broker: Mosquitto, group: str, cleanup: Cleanup, **kw: object) -> EdgeNode:
    node = EdgeNode(broker.host, broker.port, group, "edge1", node_metrics=NODE_METRICS, **kw)  # type: ignore[arg-type]
    node.add_device("cnc1", CNC)
    node.add_device("robot", ROBOT)
    cleanup(node.stop)
    return node


def _metric(d: DecodedPayload, name: str) -> float:
    assert d.names is not None
    return float(d.value[d.names.index(name)])


def test_session_births_data_and_clean_death(
    mosquitto: Mosquitto, group: str, observer: Observer, cleanup: Cleanup
) -> None:
    node = _node(mosquitto, group, cleanup)
    node.start(timeout=5)

    nbirth = observer.next("NBIRTH")
    assert nbirth.topic.text == f"spBv1.0/{group}/NBIRTH/edge1"
    assert nbirth.payload.seq == 0 and _metric(nbirth.payload, BDSEQ) == 0 and _metric(nbirth.payload, REBIRTH) == 0
    assert nbirth.payload.names == [BDSEQ, REBIRTH, "Node/Uptime"]
    assert np.isnan(_metric(nbirth.payload, "Node/Uptime"))  # never published: null
    cnc_birth, robot_birth = observer.next("DBIRTH"), observer.next("DBIRTH")
    assert (cnc_birth.topic.device, cnc_birth.payload.seq) == ("cnc1", 1)
    assert (robot_birth.topic.device, robot_birth.payload.seq) == ("robot", 2)
    assert cnc_birth.payload.names == [s.name for s in CNC]
    np.testing.assert_array_equal(cnc_birth.payload.alias, [10, 11, 12, 13])
    np.testing.assert_array_equal(cnc_birth.payload.datatype, [s.datatype for s in CNC])
    assert node.births == 1 and node.bdseq == 0 and node.online

    node.publish_device_data("cnc1", 1_000, np.array([1200.5, 0.25, 17, 1.0]))
    d = observer.next("DDATA")
    assert d.topic.device == "cnc1" and d.payload.fast and d.payload.seq == 3 and d.payload.timestamp == 1_000
    np.testing.assert_array_equal(d.payload.alias, [10, 11, 12, 13])
    np.testing.assert_array_equal(d.payload.value, [1200.5, 0.25, 17.0, 1.0])

    node.publish_device_data("robot", 2_000, np.array([np.nan, 3.0]), mask=np.array([True, False]))
    d = observer.next("DDATA")
    assert d.topic.device == "robot" and d.payload.seq == 4
    np.testing.assert_array_equal(d.payload.alias, [20])
    assert np.isnan(d.payload.value[0]) and d.payload.quality[0] == 0  # NaN goes out as is_null

    node.publish_device_data("robot", 2_500, np.array([1.0, 2.0]), mask=np.zeros(2, bool))  # nothing changed
    node.publish_node_data(3_000, np.array([42.0]))
    d = observer.next("NDATA")
    assert d.payload.seq == 5 and d.payload.alias.tolist() == [1] and d.payload.value.tolist() == [42.0]

    node.stop()
    deaths = [observer.next("DDEATH"), observer.next("DDEATH")]
    assert [(x.topic.device, x.payload.seq) for x in deaths] == [("cnc1", 6), ("robot", 7)]
    ndeath = observer.next("NDEATH")
    assert _metric(ndeath.payload, BDSEQ) == 0
    observer.assert_quiet()
    assert not node.online


def test_seq_wraps_at_256(mosquitto: Mosquitto, group: str, observer: Observer, cleanup: Cleanup) -> None:
    node = _node(mosquitto, group, cleanup)
    node.start(timeout=5)
    seqs = [observer.next().payload.seq for _ in range(3)]  # NBIRTH, DBIRTH, DBIRTH
    values = np.zeros(len(ROBOT))
    for i in range(300):
        values[0] = i
        node.publish_device_data("robot", i, values)
    seqs += [observer.next("DDATA").payload.seq for _ in range(300)]
    assert seqs == [i % 256 for i in range(303)]


def test_rebirth_request_republishes_births_with_last_values(
    mosquitto: Mosquitto, group: str, observer: Observer, cleanup: Cleanup
) -> None:
    commands: list[tuple[str | None, DecodedPayload]] = []
    got_command = threading.Event()

    def on_command(device: str | None, payload: DecodedPayload) -> None:
        commands.append((device, payload))
        got_command.set()

    node = _node(mosquitto, group, cleanup, on_command=on_command)
    node.start(timeout=5)
    for _ in range(3):
        observer.next()
    node.publish_device_data("cnc1", 1_000, np.array([100.0, 0.5, 3, 0.0]))
    node.publish_device_data("cnc1", 1_100, np.array([101.0, 0.0, 0, 0.0]), mask=np.array([True, False, False, False]))
    assert observer.next("DDATA").payload.seq == 3 and observer.next("DDATA").payload.seq == 4

    observer.publish(f"spBv1.0/{group}/NCMD/edge1", encode_rebirth_request(5_000))
    nbirth = observer.next("NBIRTH")
    assert nbirth.payload.seq == 0 and _metric(nbirth.payload, BDSEQ) == 0  # same session, same bdSeq
    cnc = observer.next("DBIRTH")
    assert cnc.topic.device == "cnc1" and cnc.payload.seq == 1
    np.testing.assert_array_equal(cnc.payload.value, [101.0, 0.5, 3.0, 0.0])  # last value of each metric
    assert observer.next("DBIRTH").payload.seq == 2
    assert node.births == 2
    node.publish_device_data("robot", 6_000, np.array([1.0, 2.0]))
    assert observer.next("DDATA").payload.seq == 3

    observer.publish(f"spBv1.0/{group}/DCMD/edge1/robot", encode_data(7_000, 0, [21], [DataType.Int16], [3]))
    assert got_command.wait(5)
    device, payload = commands[0]
    assert device == "robot" and payload.alias.tolist() == [21] and payload.value.tolist() == [3.0]
    assert node.births == 2  # a DCMD is not a rebirth


def test_lost_connection_yields_ndeath_then_a_new_session(
    mosquitto: Mosquitto, group: str, observer: Observer, cleanup: Cleanup
) -> None:
    node = _node(mosquitto, group, cleanup)
    node.start(timeout=5)
    for _ in range(3):
        observer.next()
    node.publish_device_data("cnc1", 1_000, np.array([7.0, 1.0, 2, 1.0]))
    observer.next("DDATA")

    sock = node._client.socket()  # kill the TCP connection without an MQTT DISCONNECT
    assert isinstance(sock, socket.socket)
    sock.shutdown(socket.SHUT_RDWR)

    ndeath = observer.next("NDEATH")  # the broker publishes the will
    assert _metric(ndeath.payload, BDSEQ) == 0
    nbirth = observer.next("NBIRTH", timeout=10)  # paho reconnects after ~1 s
    assert _metric(nbirth.payload, BDSEQ) == 1 and nbirth.payload.seq == 0
    cnc = observer.next("DBIRTH")
    np.testing.assert_array_equal(cnc.payload.value, [7.0, 1.0, 2.0, 1.0])
    observer.next("DBIRTH")
    assert node.births == 2 and node.bdseq == 1

    node.stop()
    observer.next("DDEATH")
    observer.next("DDEATH")
    assert _metric(observer.next("NDEATH").payload, BDSEQ) == 1


def test_data_before_start_goes_into_the_births(
    mosquitto: Mosquitto, group: str, observer: Observer, cleanup: Cleanup
) -> None:
    node = _node(mosquitto, group, cleanup)
    node.publish_device_data("robot", 1, np.array([12.5, 3.0]))  # offline: kept, not queued
    node.publish_node_data(1, np.array([99.0]))
    node.start(timeout=5)
    assert _metric(observer.next("NBIRTH").payload, "Node/Uptime") == 99.0
    observer.next("DBIRTH")
    np.testing.assert_array_equal(observer.next("DBIRTH").payload.value, [12.5, 3.0])
    node.publish_device_data("robot", 2, np.array([13.0, 3.0]))
    assert observer.next("DDATA").payload.seq == 3


def test_device_added_after_start_is_born_at_once(
    mosquitto: Mosquitto, group: str, observer: Observer, cleanup: Cleanup
) -> None:
    node = EdgeNode(mosquitto.host, mosquitto.port, group, "edge1")
    cleanup(node.stop)
    node.start(timeout=5)
    assert observer.next("NBIRTH").payload.names == [BDSEQ, REBIRTH]
    node.add_device("late", [MetricSpec("x", DataType.Double, 5)])
    birth = observer.next("DBIRTH")
    assert birth.topic.device == "late" and birth.payload.seq == 1


def test_start_raises_not_ready_without_a_broker_and_can_be_retried(group: str, cleanup: Cleanup) -> None:
    port = free_port()
    node = EdgeNode("127.0.0.1", port, group, "edge1")
    cleanup(node.stop)
    with pytest.raises(NotReady, match="did not accept the connection"):
        node.start(timeout=0.3)
    with Mosquitto(port=port) as broker:
        observer = Observer(broker, group)
        try:
            node.start(timeout=5)
            assert observer.next("NBIRTH").payload.seq == 0 and node.online
            node.stop()
            node.stop()  # idempotent
            assert _metric(observer.next("NDEATH").payload, BDSEQ) == 0
            node.start(timeout=5)  # a new session
            assert _metric(observer.next("NBIRTH").payload, BDSEQ) == 1 and node.births == 2
            node.stop()
            assert _metric(observer.next("NDEATH").payload, BDSEQ) == 1
        finally:
            observer.close()


def test_metric_declarations_are_checked() -> None:
    node = EdgeNode("127.0.0.1", 1, "g", "edge1", node_metrics=NODE_METRICS)
    with pytest.raises(ValueError, match="unique across"):
        node.add_device("d", [MetricSpec("a", DataType.Double, 1)])  # alias 1 is the node's
    node.add_device("d", [MetricSpec("a", DataType.Double, 2)])
    with pytest.raises(ValueError, match="unique across"):
        node.add_device("e", [MetricSpec("b", DataType.Double, 2)])
    with pytest.raises(ValueError, match="already added"):
        node.add_device("d", [MetricSpec("c", DataType.Double, 3)])
    with pytest.raises(ValueError, match="numeric and Boolean metrics only"):
        node.add_device("f", [MetricSpec("s", DataType.String, 4)])
    with pytest.raises(ValueError, match="duplicate metric names"):
        node.add_device("g", [MetricSpec("s", DataType.Double, 5), MetricSpec("s", DataType.Double, 6)])
    with pytest.raises(ValueError, match="unknown device"):
        node.publish_device_data("nope", 0, np.zeros(1))
    with pytest.raises(ValueError, match="expected 1 values"):
        node.publish_device_data("d", 0, np.zeros(2))
    with pytest.raises(ValueError, match="'/', '\\+' or '#'"):
        node.add_device("a/b", [])
