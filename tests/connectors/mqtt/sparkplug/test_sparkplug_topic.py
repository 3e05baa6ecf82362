from __future__ import annotations

import pytest

from shopfloor.connectors.mqtt.sparkplug import SparkplugTopic, parse_topic
from shopfloor.core.errors import DecodeError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("spBv1.0/plant/NBIRTH/edge1", SparkplugTopic("plant", "NBIRTH", "edge1")),
        ("spBv1.0/plant/NDEATH/edge1", SparkplugTopic("plant", "NDEATH", "edge1")),
        ("spBv1.0/plant/NDATA/edge1", SparkplugTopic("plant", "NDATA", "edge1")),
        ("spBv1.0/plant/NCMD/edge1", SparkplugTopic("plant", "NCMD", "edge1")),
        ("spBv1.0/plant/DBIRTH/edge1/cnc-1", SparkplugTopic("plant", "DBIRTH", "edge1", "cnc-1")),
        ("spBv1.0/plant/DDEATH/edge1/cnc-1", SparkplugTopic("plant", "DDEATH", "edge1", "cnc-1")),
        ("spBv1.0/plant/DDATA/edge1/cnc-1", SparkplugTopic("plant", "DDATA", "edge1", "cnc-1")),
        ("spBv1.0/plant/DCMD/edge1/cnc-1", SparkplugTopic("plant", "DCMD", "edge1", "cnc-1")),
        ("spBv1.0/STATE/scada-host", SparkplugTopic("", "STATE", "scada-host")),
    ],
)
def test_parse_and_text_round_trip(text: str, expected: SparkplugTopic) -> None:
    parsed = parse_topic(text)
    assert parsed == expected
    assert expected.text == text
    assert parsed.is_device == (expected.device is not None)


@pytest.mark.parametrize("text", ["plant/line1/temp", "spBv1.0", "spAv1.0/g/NDATA/n", "STATE/host", ""])
def test_not_sparkplug_is_none(text: str) -> None:
    assert parse_topic(text) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spBv1.0/plant/NFOO/edge1", "unknown message type 'NFOO'"),
        ("spBv1.0/plant/ndata/edge1", "unknown message type 'ndata'"),
        ("spBv1.0/plant/DDATA/edge1", "DDATA takes 5 levels, got 4"),
        ("spBv1.0/plant/NDATA/edge1/dev", "NDATA takes 4 levels, got 5"),
        ("spBv1.0/plant/DDATA/edge1/dev/extra", "DDATA takes 5 levels, got 6"),
        ("spBv1.0/plant/NDATA", "expected spBv1.0/<group>/<type>/<node>"),
        ("spBv1.0/plant", "expected spBv1.0/<group>/<type>/<node>"),
        ("spBv1.0/STATE/", "empty host id"),
        ("spBv1.0//NDATA/edge1", "group id is empty"),
        ("spBv1.0/plant/NDATA/", "edge node id is empty"),
        ("spBv1.0/plant/DDATA/edge1/", "device id is empty"),
        ("spBv1.0/plant/STATE/edge1", "unknown message type 'STATE'"),
    ],
)
def test_malformed_sparkplug_topic_raises(text: str, message: str) -> None:
    with pytest.raises(DecodeError, match="malformed Sparkplug topic") as err:
        parse_topic(text)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "args",
    [
        ("plant", "NOPE", "edge1", None),
        ("plant", "DDATA", "edge1", None),
        ("plant", "NDATA", "edge1", "dev"),
        ("pl/ant", "NDATA", "edge1", None),
        ("plant", "NDATA", "edge+", None),
        ("plant", "DDATA", "edge1", "#"),
        ("plant", "STATE", "host", None),
        ("", "NDATA", "edge1", None),
    ],
)
def test_constructor_validates(args: tuple[str, str, str, str | None]) -> None:
    with pytest.raises(ValueError):
        SparkplugTopic(*args)
