"""The SCAIP receiver: social alarms (SS 91100 / CLC/TS 50134-9) over SIP MESSAGE, UDP and TCP."""
