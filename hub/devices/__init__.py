"""Devices: the inventory as the other parts need it and the broker accounts for it."""
