"""Whether the hub can see its devices and its own alarm path, and what it owes staff and operations when it cannot."""
