"""Where the in-focus subject is: focus, depth, person and file masks, and their tracking over time."""
