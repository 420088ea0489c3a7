"""Benchmarks and the data generator they run on (``make bench``); never imported by csvimport."""
