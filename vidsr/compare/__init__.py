"""Side-by-side comparison videos and crop sheets of plain, full-frame and partial SR."""
