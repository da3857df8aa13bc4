"""What every part of the hub runs on: the clock, background tasks, the garbage collector, retries, log redaction."""
