"""``g3w listen``: a standalone webhook receiver (see issue 3)."""
