"""Devices that print one reading per line on a serial port, described by profile files.

A device model is a TOML profile (line patterns with named groups, codes, units, serial
settings) in `profiles/` or anywhere on disk; supporting a new model means writing a profile.
"""
