"""The routes' compiled topic filters agree with paho's reference matcher on every topic and filter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from hub.intake.ingest import topic_matcher

level = st.sampled_from(["a", "b", "zigbee2mqtt", "lgh 12", "", "$SYS", "kök"])
topics = st.lists(level, min_size=1, max_size=5).map("/".join)
filter_levels = st.lists(st.one_of(level, st.just("+")), min_size=0, max_size=4)
filters = st.tuples(filter_levels, st.booleans()).map(
    lambda t: "/".join([*t[0], "#"]) if t[1] else "/".join(t[0] or ["+"])
)


@given(topic_filter=filters, topic=topics)
def test_matches_like_paho(topic_filter: str, topic: str) -> None:
    assert topic_matcher(topic_filter)(topic) == topic_matches_sub(topic_filter, topic)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("zigbee2mqtt/#", "zigbee2mqtt/lgh 12/dörr", True),
        ("zigbee2mqtt/#", "zigbee2mqtt", True),
        ("radar/+/+", "radar/VYR-1/events", True),
        ("radar/+/+", "radar/VYR-1/events/x", False),
        ("+/events", "$SYS/events", False),
        ("#", "$SYS/broker", False),
    ],
)
def test_route_filters(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matcher(topic_filter)(topic) is expected
