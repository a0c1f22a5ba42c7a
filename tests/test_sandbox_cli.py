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
