"""--sandbox across processes: a task submitted by one g3w process is found by the next one."""

from __future__ import annotations

import re

from conftest import g3w


def test_submit_then_wait_in_new_processes_with_sandbox() -> None:
    """submit --sandbox prints an id; later wait --sandbox runs (new sandbox, new port) find it."""
    submitted = g3w("submit", "flux-dev", "-p", "x", "--sandbox", "-q")
    assert submitted.code == 0, submitted.stderr
    task_id = submitted.stdout.strip()
    assert re.fullmatch(r"pred_[0-9a-f]{12}", task_id)

    waited = g3w("wait", task_id, "--sandbox", "--json")
    assert waited.code == 0, waited.stderr
    record = waited.json()
    assert (record["id"], record["status"]) == (task_id, "completed")
    assert len(record["outputs"]) == 1 and f"/cdn/outputs/{task_id}_0.png" in record["outputs"][0]

    again = g3w("wait", task_id, "--sandbox", "--json")
    assert again.code == 0, again.stderr
    assert (again.json()["id"], again.json()["status"]) == (task_id, "completed")
    assert again.json()["outputs"] != record["outputs"]  # built on the new sandbox's port
