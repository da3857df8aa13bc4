"""The alarm rule engine: declarative rules over Events and time. Pure: events and the current time in, decisions out."""
