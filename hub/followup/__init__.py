"""Follow-up: usage indicators per site, unit and period, the monthly report, open data and the archive export.

The indicators are computed in the database from `followup_device_day` (a daily rollup of `events`: a continuous
aggregate on TimescaleDB, a table the hub refreshes on plain PostgreSQL; see `rollup.py`) and from the desk's alarm
tables. Every indicator has a stable id and a definition in docs/indicators.md.
"""
