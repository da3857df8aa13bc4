"""Hubs that own sites one at a time (the HA profile, `ha.enabled`; docs/ha.md, issue 30).

leases.py: the lease per site in the database (token, expiry by the database's clock). keeper.py: which sites this
hub holds, the desk's "may I act for this site?", the outside watch. engines.py: a rule engine and a gate per owned
site. takeover.py: restore a site taken, save each owned site's snapshot, forget a site lost. profile.py: the wiring
for hub/app.py.
"""
