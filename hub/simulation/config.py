"""What a simulation run is asked to do: site, population, time window, incident rates, publishing."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.model import VakaError
from hub.runtime.clock import CLOCK_TOPIC


class SimulationError(VakaError):
    """The simulation cannot run as configured, or the broker refused it."""


class IncidentRates(BaseModel):
    """Expected number of each incident per resident and night (a Poisson mean; 0 turns one off)."""

    model_config = ConfigDict(extra="forbid")

    falls: float = Field(default=0.04, ge=0, le=5, description="real falls: radar detect → confirm")
    cancelled_falls: float = Field(default=0.04, ge=0, le=5, description="radar detect → cancel (false positive)")
    alarm_buttons: float = Field(default=0.04, ge=0, le=5, description="alarm button presses")
    bed_exits_no_return: float = Field(default=0.04, ge=0, le=5, description="night bed exits without return")
    wandering: float = Field(default=0.02, ge=0, le=5, description="entrance door opened at night")
    missed_medication: float = Field(default=0.1, ge=0, le=5, description="missed doses (robot residents only)")
    low_temperature: float = Field(default=0.02, ge=0, le=5, description="room below 16 °C for about an hour")
    temperature_blips: float = Field(default=0.02, ge=0, le=5, description="one low reading (false positive)")
    silent_devices: float = Field(default=0.02, ge=0, le=5, description="a device stops reporting for a while")
    camera_offline: float = Field(default=0.02, ge=0, le=5, description="a camera reports offline for minutes")
    low_batteries: float = Field(default=0.01, ge=0, le=5, description="a battery falls below 15 %")
    no_morning_activity: float = Field(default=0.01, ge=0, le=5, description="no activity 06–10 (no robot)")
    long_bathroom_visits: float = Field(default=0.02, ge=0, le=5, description="bathroom presence over 45 min")
    water_leaks: float = Field(default=0.005, ge=0, le=5, description="water leak sensor wet")
    smoke: float = Field(default=0.002, ge=0, le=5, description="smoke detector alarm")


class SimConfig(BaseModel):
    """One simulation run. Everything random derives from `seed`; the same config yields the same messages."""

    model_config = ConfigDict(extra="forbid")

    site: str = Field(default="demo", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,40}$", description="site id")
    site_name: str = Field(default="Simulated care unit", max_length=80)
    timezone: str = Field(default="Europe/Stockholm", description="IANA zone of the site")
    residents: int = Field(default=20, ge=1, le=100_000)
    first_resident: int = Field(default=1, ge=1, description="number of the first resident id (r-0001)")
    residents_per_unit: int = Field(default=16, ge=1, description="residents per care unit (A, B, …)")
    robot_share: float = Field(default=0.3, ge=0, le=1, description="share of residents with a medication robot")
    start: datetime | None = Field(default=None, description="simulated start; default tonight 20:00 local")
    hours: float | None = Field(default=None, gt=0, le=24 * 366, description="duration; overrides nights")
    nights: int = Field(default=1, ge=1, le=366, description="run until 10:30 local on the n-th morning")
    seed: int = Field(default=1)
    speed: float = Field(default=1.0, ge=0, description="simulated seconds per wall second; 0 as fast as possible")
    rates: IncidentRates = Field(default_factory=IncidentRates)
    grace_s: float = Field(default=120.0, ge=0, description="slack added to each incident's must_raise_by")
    clock_topic: str = Field(default=CLOCK_TOPIC, min_length=1, description="where the simulated clock is published")
    clock_tick_s: float = Field(default=10.0, gt=0, description="a clock message at least this often (simulated)")
    clock_lead_s: float = Field(default=5.0, ge=0, description="a clock message before an event this much later")
    checkin_share: float = Field(default=0.0, ge=0, le=1, description="share of residents with a check-in plan")
    camera_failure_rate: float = Field(
        default=0.1, ge=0, le=1, description="chance a check-in resident's camera is silent at a camera slot"
    )

    @model_validator(mode="after")
    def _aware_start(self) -> SimConfig:
        if self.start is not None and self.start.tzinfo is None:
            self.start = self.start.replace(tzinfo=self.zone)
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The site's time zone."""
        return ZoneInfo(self.timezone)

    def window(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """Return the simulated (start, end) of the run, both aware."""
        zone = self.zone
        if self.start is not None:
            start = self.start
        else:
            today = (now or datetime.now(zone)).astimezone(zone).date()
            start = datetime.combine(today, time(20, 0), tzinfo=zone)
        if self.hours is not None:
            return start, start + timedelta(hours=self.hours)
        local = start.astimezone(zone)
        morning = local.date() + timedelta(days=self.nights if local.time() >= time(10, 30) else self.nights - 1)
        end = datetime.combine(morning, time(10, 30), tzinfo=zone)
        return start, end
