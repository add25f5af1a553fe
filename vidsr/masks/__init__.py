"""Where the in-focus subject is: focus, depth, person and file masks, and their tracking over time.

- ``base``: the ``MaskEstimator`` protocol, ``MaskFrame`` (one frame's mask), ``work_size``,
  ``ThresholdStats`` (the thresholds a run used, for its summary).
- ``focus``: the weight-free focus map and its estimator, a constant estimator; Otsu threshold,
  mask cleaning, feathering, soft-matte helpers.
- ``tracker``: ``MaskTracker``, stable masks over a stream (anchors, smoothing, cuts, carry).
- ``flow``: dense optical flow that carries a mask between anchors.
- ``depth``: monocular depth networks (transformers or ONNX Runtime) and their ONNX export.
- ``focal``: depth -> foreground score around the focal plane.
- ``person``: person segmentation (LiteRT).
- ``file``: masks read from a grey mask video.
- ``factory``: ``MaskSpec``, ``--mask`` parsing, and the estimator a spec names.
- ``video``: ``vidsr mask``, the mask stage written as a grey video.
- ``synthetic``: synthetic masks for benchmarks (a centred ellipse).
"""
