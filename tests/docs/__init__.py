"""Tests that keep the documentation true: its commands run, its packaging files are consistent."""
