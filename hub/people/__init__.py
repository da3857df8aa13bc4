"""People: staff (the model, duty rosters) and the resident directory."""
