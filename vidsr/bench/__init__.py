"""Throughput and quality benchmarks of the upscale stages (``vidsr bench``)."""
