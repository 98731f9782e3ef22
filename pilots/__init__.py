"""Measuring what a pilot did: effects with honest intervals, from the impact rollups.

- `stats`: before/after adjusted for weekday and opening hours, difference-in-differences
  against control spaces, and rate changes; numpy only.
- `energy`: savings against a weather-normalised baseline (CalTRACK daily model through
  OpenDSM, ASHRAE Guideline 14 uncertainty); needs the `pilots` extra.

The definitions (scope, metrics, periods) are part of the site file: `devices.pilots`.
"""
