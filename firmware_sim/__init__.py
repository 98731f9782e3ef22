"""The Kera device simulator: a fleet from the site file, publishing native readings."""

from firmware_sim.fleet import SimReading, build_fleet
from firmware_sim.runner import Publisher, Summary, run, schedule

__all__ = ["Publisher", "SimReading", "Summary", "build_fleet", "run", "schedule"]
