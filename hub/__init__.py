"""The Vaka hub: wiring, I/O and the web."""
