"""Adapters by name, from the `vaka.adapters` entry-point group: the built-ins and any installed vendor package.

A vendor ships an adapter as its own distribution with, in its pyproject.toml,

    [project.entry-points."vaka.adapters"]
    acme_radar = "acme_vaka.radar"

naming a module that has `parse(topic, payload, received_at) -> list[Event]` (and may have `TOPIC_FILTERS`).
`mqtt.routes` then names it: `{topic_filter = "acme/#", adapter = "acme_radar", site = "s1"}`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from types import ModuleType

from hub.settings import SettingsError

GROUP = "vaka.adapters"
BUILT_IN = ("native", "zigbee2mqtt", "frigate", "fall_radar", "medication_robot", "scaip")


def available_adapters() -> dict[str, str]:
    """Adapter name → the module it loads, for every adapter installed (entry points, then built-ins)."""
    found = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    for name in BUILT_IN:
        found.setdefault(name, f"adapters.{name}")
    return dict(sorted(found.items()))


def load_adapter(name: str) -> ModuleType:
    """The adapter module registered under `name`, or raise SettingsError saying what is installed."""
    target = available_adapters().get(name)
    if target is None:
        msg = f"mqtt.routes: no adapter named {name!r}; installed: {', '.join(available_adapters())}"
        raise SettingsError(msg)
    try:
        module = importlib.import_module(target.partition(":")[0])
    except ImportError as exc:
        msg = f"mqtt.routes: adapter {name!r} is registered as {target!r} but cannot be imported: {exc}"
        raise SettingsError(msg) from exc
    if not callable(getattr(module, "parse", None)):
        msg = f"mqtt.routes: adapter {name!r} ({target}) has no parse(topic, payload, received_at)"
        raise SettingsError(msg)
    return module
