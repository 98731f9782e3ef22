"""The Kera device simulator: a fleet from the site file, publishing like real firmware."""

from firmware_sim.faults import Faults
from firmware_sim.fleet import SimReading, build_fleet, scale_site
from firmware_sim.formats import Format
from firmware_sim.links import Links
from firmware_sim.runner import MemorySink, Summary, run, schedule

__all__ = [
    "Faults",
    "Format",
    "Links",
    "MemorySink",
    "SimReading",
    "Summary",
    "build_fleet",
    "run",
    "scale_site",
    "schedule",
]
