"""``g3w batch``: many tasks through one listener, resumable (see issue 4)."""
