"""The frame-streaming upscale: configuration, worker stages, the run and resumable segments."""
