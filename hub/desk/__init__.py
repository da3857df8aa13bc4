"""The alarm lane: rule engine → desk state machine → fan-out. See docs/architecture.md.

`Desk` (hub.desk.lane) owns the lane; `DeskMachine` (hub.desk.machine) is its pure state machine, importable without
the database driver; `FanOut` (hub.desk.fanout) delivers changes; `DeskStore` (hub.desk.persistence) writes them
behind the alarm path.
"""
