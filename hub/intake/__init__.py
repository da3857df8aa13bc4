"""Telemetry in: the MQTT connections, paho's private surface, topic to adapter to Events."""
