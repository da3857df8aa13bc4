"""Vendor formats turned into Events. Each module has `parse(topic, payload, received_at) -> list[Event]`; pure, no I/O."""
