"""After a restart the engine is where it would have been: local snapshots, then a replay."""
