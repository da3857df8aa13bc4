"""Night check-ins (digital tillsyn): planned slots per resident, a task per slot for the unit's night patrol, a short
live camera look that passes no image through Vaka, and the physical visit when the look is not enough.

`plan.py` the plan and its validation, `schedule.py` which tasks are due when (pure), `service.py` the tasks' life
(created, looked at, done, turned physical, escalated when overdue), `gateway.py` the camera gateway that issues
short-lived viewing URLs, `store.py` the SQL.
"""
