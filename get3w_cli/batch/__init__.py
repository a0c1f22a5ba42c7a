"""``g3w batch``: many tasks from a JSON Lines file, one listener, resumable from the journal.

    lines.py    the streaming reader: checks every line, spools stdin, hashes the file
    pacing.py   AIMD pace per provider: a 429 halves the tasks in flight, success grows them back
    report.py   the counters the CLI renders and the records the batch writes
    runner.py   the engine: reader, workers, journal states, resume
"""
