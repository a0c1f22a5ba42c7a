"""``g3w batch``: many tasks from a JSON Lines file, one listener, resumable from the journal.

    lines.py     the streaming reader: checks every line, spools stdin, hashes the file
    identity.py  which batch a run is (name, else path), whether it may run, edited lines
    lock.py      one process per batch (flock under G3W_HOME)
    pacing.py    AIMD pace per provider: a 429 halves the tasks in flight, success grows them back
    ledger.py    each line's state in the journal, the counters and the output, kept in step
    submit.py    one line's submit: journal, POST, journal; 429s retried until its deadline
    runner.py    the engine: reader, workers, resume triage, re-waits
    finish.py    the end of a line: wait (waiting.wait_for), download, record
    report.py    the counters the CLI renders and the records the batch writes
"""
