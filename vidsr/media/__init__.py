"""Video in and out with PyAV: opening inputs, decoding, encoding, streams, segments, the sample clip."""
