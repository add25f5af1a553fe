"""Many inputs and many machines: batches of files and segments spread over Ray workers."""
