"""Video in and out with PyAV.

``types`` (VideoInfo, Frame, ...), ``open`` (files, image sequences, stdin), ``reader`` (decoding,
with ``deinterlace``), ``codecs`` (encoder choice), ``streams`` (side streams, tags, chapters),
``writer`` (VideoWriter), ``output`` (path checks, atomic output), ``segments`` (split/join),
``sample`` (the sample clip).
"""
