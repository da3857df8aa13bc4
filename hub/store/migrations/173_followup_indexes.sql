-- Follow-up at a year of 1,000 residents: technical repairs are found by when they closed.
CREATE INDEX IF NOT EXISTS desk_alarms_technical_closed ON desk_alarms (site, closed_at) WHERE category = 'technical';
