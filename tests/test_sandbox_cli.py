"""--sandbox across commands: a task submitted by one g3w command is found by the next one (a new sandbox)."""

from __future__ import annotations

import re

from inproc import invoke


def test_submit_then_wait_with_a_new_sandbox_each_time() -> None:
    """submit --sandbox prints an id; later wait --sandbox runs (new sandbox, new port) find it."""
    submitted = invoke("submit", "flux-dev", "-p", "x", "--sandbox", "-q")
    assert submitted.code == 0, submitted.stderr
    task_id = submitted.stdout.strip()
    assert re.fullmatch(r"pred_[0-9a-f]{12}", task_id)

    waited = invoke("wait", task_id, "--sandbox", "--json")
    assert waited.code == 0, waited.stderr
    record = waited.json()
    assert (record["id"], record["status"]) == (task_id, "completed")
    assert len(record["outputs"]) == 1 and f"/cdn/outputs/{task_id}_0.png" in record["outputs"][0]

    again = invoke("wait", task_id, "--sandbox", "--json")
    assert again.code == 0, again.stderr
    assert (again.json()["id"], again.json()["status"]) == (task_id, "completed")
    assert again.json()["outputs"] != record["outputs"]  # built on the new sandbox's port


def test_g3w_sandbox_says_what_to_paste_a_line_per_request_and_stops_on_ctrl_c() -> None:
    """`g3w sandbox`: the URL on stdout; on stderr the export lines that point g3w at it, one line
    per request answered, and at Ctrl-C how many it served (exit 130, no error)."""
    import os
    import queue
    import signal
    import subprocess
    import sys
    import threading

    import httpx

    proc = subprocess.Popen([sys.executable, "-m", "get3w_cli", "sandbox", "--port", "0"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in proc.stderr], daemon=True)
    reader.start()
    try:
        url = proc.stdout.readline().strip()
        said = [lines.get(timeout=10) for _ in range(5)]
        assert said[0] == f"Sandbox listening on {url}  (Ctrl-C to stop)"
        assert said[2:] == [f"  export GET3W_BASE_URL={url}", f"  export ABSTRAKT_BASE_URL={url}",
                            "  export GET3W_API_KEY=sk_sandbox_local ABSTRAKT_API_KEY=sk_sandbox_local"]
        answer = httpx.get(f"{url}/api/v3/predictions/pred_nope?token=secret",
                           headers={"Authorization": "Bearer sk_key_not_shown"})
        assert answer.status_code == 404
        line = lines.get(timeout=10)
        assert re.fullmatch(r"\d\d:\d\d:\d\d  GET    /api/v3/predictions/pred_nope  404", line), line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130
        reader.join(10)
        rest = []
        while not lines.empty():
            rest.append(lines.get())
        assert rest == ["1 request(s) served"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
