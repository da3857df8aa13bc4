"""Every Prometheus metric of Vaka, in one place.

Naming follows Prometheus conventions (`vaka_` prefix, base units, `_total` counters). No resident or device ids
as labels: label values are bounded sets (reason, channel, category, lane, state).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The hub's metrics, registered in one registry (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # ingest
        self.messages_received = Counter("vaka_mqtt_messages_received", "MQTT messages received", ["lane"], registry=r)
        self.events_ingested = Counter("vaka_events_ingested", "Events parsed from MQTT messages", ["lane"], registry=r)
        self.messages_rejected = Counter(
            "vaka_messages_rejected", "Messages set aside as rejected, by reason", ["reason"], registry=r
        )
        self.events_unregistered = Counter(
            "vaka_events_unregistered_device", "Events from devices not in the inventory", registry=r
        )
        self.ack_latency = Histogram(
            "vaka_mqtt_ack_latency_seconds",
            "Receive to PUBACK (after durability)",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        # mqtt
        self.mqtt_connected = Gauge(
            "vaka_mqtt_connected", "1 while connected to the broker", ["connection"], registry=r
        )
        self.mqtt_reconnects = Counter("vaka_mqtt_reconnects", "Broker (re)connections", ["connection"], registry=r)
        self.mqtt_session_lost = Counter(
            "vaka_mqtt_session_lost",
            "Connections where the broker had no session for us: a possible loss window",
            ["connection"],
            registry=r,
        )
        self.mqtt_unacked = Gauge(
            "vaka_mqtt_unacked",
            "QoS 1 messages received and not yet acknowledged (acks wait until they are durable); sampled each second",
            ["connection"],
            registry=r,
        )
        self.mqtt_read_paused = Counter(
            "vaka_mqtt_read_paused",
            "Times a connection stopped reading because it held its limit of unacknowledged messages (hub.intake.mqtt)",
            ["connection"],
            registry=r,
        )
        # store
        self.events_written = Counter("vaka_events_written", "Event rows committed to the database", registry=r)
        self.events_duplicate = Counter(
            "vaka_events_duplicate", "Re-delivered events that were already stored", registry=r
        )
        self.write_batches = Counter("vaka_write_batches", "Batches written, by outcome", ["outcome"], registry=r)
        self.write_latency = Histogram(
            "vaka_write_batch_seconds", "Time to commit one batch", buckets=_LATENCY_BUCKETS_S, registry=r
        )
        self.db_up = Gauge("vaka_database_up", "1 while the database answers", registry=r)
        self.spool_bytes = Gauge("vaka_spool_bytes", "Bytes waiting in the local spool", registry=r)
        self.spool_events = Gauge("vaka_spool_events", "Events waiting in the local spool", registry=r)
        self.spool_oldest_age = Gauge(
            "vaka_spool_oldest_age_seconds", "Age of the oldest event waiting in the spool", registry=r
        )
        self.events_spooled = Counter("vaka_events_spooled", "Events appended to the spool", registry=r)
        self.events_deferred = Counter(
            "vaka_events_deferred",
            "Telemetry events left unacknowledged in the broker because the spool was full (they come again)",
            registry=r,
        )
        self.alarm_output_failures = Counter(
            "vaka_alarm_output_failures",
            "Deliveries of an alarm change that one output (persistence, pages, mqtt, channels, log, gauges) failed",
            ["output"],
            registry=r,
        )
        # the HA profile: sites owned by lease (hub/ownership/, docs/ha.md)
        self.ha_sites_owned = Gauge("vaka_ha_sites_owned", "Sites this hub holds the lease of", registry=r)
        self.ha_takeovers = Counter(
            "vaka_ha_takeovers", "Sites this hub took (restored and replayed), by outcome", ["outcome"], registry=r
        )
        self.ha_sites_lost = Counter(
            "vaka_ha_sites_lost", "Sites this hub held and lost (another hub took them, or fencing refused)", registry=r
        )
        self.ha_rows_fenced = Counter(
            "vaka_ha_rows_fenced",
            "Desk rows the database refused because their site's fencing token was no longer this hub's (dropped)",
            ["kind"],
            registry=r,
        )
        self.ha_lease_failures = Counter(
            "vaka_ha_lease_round_failures", "Lease rounds that could not reach the database", registry=r
        )
        self.ha_unconfirmed = Gauge(
            "vaka_ha_lease_unconfirmed",
            "1 while this hub acts for its sites past its last confirmed lease (the database away): see docs/ha.md",
            registry=r,
        )
        self.desk_rows_refused = Counter(
            "vaka_desk_rows_refused",
            "Rows of the desk the database refused for their content, set aside in desk_refused_rows",
            ["kind"],
            registry=r,
        )
        self.local_write_failures = Counter(
            "vaka_local_write_failures",
            "Writes of the hub's local state that the disk refused (engine snapshot, inventory, journal, marker)",
            ["what"],
            registry=r,
        )
        # alarms
        self.rule_evaluation = Histogram(
            "vaka_rule_evaluation_seconds",
            "Rule engine time per event",
            buckets=(1e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 1e-3, 1e-2),
            registry=r,
        )
        self.alarms_raised = Counter("vaka_alarms_raised", "Alarms raised", ["category", "severity"], registry=r)
        self.alarm_transitions = Counter(
            "vaka_alarm_transitions", "Alarm state changes", ["category", "state"], registry=r
        )
        self.alarms_open = Gauge("vaka_alarms_open", "Open alarms", ["category", "state"], registry=r)
        self.alarm_accept_latency = Histogram(
            "vaka_alarm_accept_seconds",
            "Raised to accepted",
            buckets=(5, 10, 30, 60, 120, 180, 300, 600, 1200, 3600),
            registry=r,
        )
        self.escalations = Counter("vaka_alarm_escalations", "Escalation tiers notified", ["category"], registry=r)
        # the night patrol (issue 17): nobody reached, repeats that ring again, handovers
        self.escalations_unreached = Counter(
            "vaka_alarm_escalations_unreached", "Escalation tiers that found nobody to notify", ["category"], registry=r
        )
        self.nobody_reached = Counter(
            "vaka_alarms_nobody_reached", "Alarms for which a site-level 'nobody reached' alarm was raised", registry=r
        )
        self.alarm_repeats = Counter(
            "vaka_alarm_repeats", "New incidents on an open alarm (ring again)", ["category"], registry=r
        )
        self.alarm_handovers = Counter("vaka_alarm_handovers", "Alarms taken over from a colleague", registry=r)
        self.alarm_lane_failures = Counter(
            "vaka_alarm_lane_failures",
            "Alarm lane items that failed (each logged with its alarm, and raised as a technical alarm)",
            ["step"],
            registry=r,
        )
        # notifications
        self.notifications_sent = Counter(
            "vaka_notifications_sent", "Notifications handed to a channel", ["channel"], registry=r
        )
        self.notifications_failed = Counter(
            "vaka_notifications_failed", "Notifications a channel failed to deliver", ["channel"], registry=r
        )
        self.notifications_delivered = Counter(
            "vaka_notifications_delivered", "Notifications the client confirmed", ["channel"], registry=r
        )
        self.notification_delivery_latency = Histogram(
            "vaka_notification_delivery_seconds",
            "Alarm raised to client receipt",
            ["channel"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.websocket_clients = Gauge("vaka_websocket_clients", "Staff pages connected", registry=r)
        # web and privacy
        self.resident_reads = Counter(
            "vaka_resident_data_reads", "Reads of resident data by a person (each also logged)", ["role"], registry=r
        )
        self.logins = Counter("vaka_logins", "Login attempts by outcome", ["outcome"], registry=r)
        # SCAIP receiver
        self.scaip_requests = Counter(
            "vaka_scaip_requests",
            "SCAIP/SIP requests by result (ok, retransmission, a status or SIP error)",
            ["result"],
            registry=r,
        )
        # the hub itself
        self.hub_heartbeat = Gauge("vaka_hub_heartbeat_timestamp_seconds", "Last loop heartbeat (dead-man)", registry=r)
        self.background_task_failures = Counter(
            "vaka_background_task_failures",
            "Background tasks that failed, by task name (each logged, and raised as a technical alarm): hub/runtime/tasks.py",
            ["task"],
            registry=r,
        )
        self.engine_timers = Gauge("vaka_engine_pending_timers", "Pending rule timers", registry=r)
        # reliability: the gate, recovery, supervision blindness and the canary (docs/reliability.md)
        self.events_gated = Counter(
            "vaka_events_gated",
            "Events kept from the rules: duplicate (re-delivery), stale (older than the state), late (past freshness)",
            ["verdict"],
            registry=r,
        )
        self.withdrawals_unmatched = Counter(
            "vaka_alarm_withdrawals_unmatched",
            "Device cancels that named no alarm of theirs (no ref, foreign device, unknown ref): stored, not applied",
            registry=r,
        )
        self.events_replayed = Counter(
            "vaka_engine_replayed_events", "Stored events replayed into the engine after a restart", registry=r
        )
        self.supervision_blind = Gauge(
            "vaka_supervision_blind",
            "1 while device silence cannot be judged (broker away, the hub's own input stalled or behind, or just back)",
            registry=r,
        )
        # per path: "events" (the events connection, rules, desk) and "telemetry" (the telemetry connection's read,
        # the store and the acknowledgement)
        self.canary_last_success = Gauge(
            "vaka_canary_last_success_timestamp_seconds",
            "When the canary event last made the round trip of its path",
            ["path"],
            registry=r,
        )
        self.canary_failing = Gauge(
            "vaka_canary_failing", "1 while the canary round trip of a path is missing or slow", ["path"], registry=r
        )
        self.canary_round_trip = Histogram(
            "vaka_canary_round_trip_seconds",
            "Canary publish to the end of its path (rule engine; or stored and acknowledged)",
            ["path"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        # operations (issue 12): what the alert rules (deploy/prometheus/rules) and dashboards watch besides the above;
        # kept current by hub/supervision/gauges.py
        self.event_loop_lag = Gauge(
            "vaka_event_loop_lag_seconds", "Worst lateness of a short event-loop timer over the last 5 s", registry=r
        )
        self.gc_pause = Histogram(
            "vaka_gc_pause_seconds",
            "Garbage-collector pauses (each stalls the event loop), by generation (hub/runtime/heap.py)",
            ["generation"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.alarm_oldest_unaccepted = Gauge(
            "vaka_alarm_oldest_unaccepted_seconds",
            "Age of the oldest open alarm nobody has accepted yet (0: none)",
            ["category"],
            registry=r,
        )
        self.devices_installed = Gauge(
            "vaka_devices_installed", "Devices in the inventory", ["site", "kind", "vendor"], registry=r
        )
        self.devices_silent = Gauge(
            "vaka_devices_silent",
            "Devices with an open silence alarm (device_silent, camera_offline)",
            ["site", "kind", "vendor"],
            registry=r,
        )
