"""Every documented status word maps onto the contract's five (CONTRACT.md section 1), in `get`,
in `g3w listen`'s events and in the parsers; a word g3w does not know counts as processing and is
mentioned once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from conftest import StandInHandler, serving
from inproc import invoke
from test_abstrakt_quirks import json_server
from test_listen import Listen

from get3w_cli.payloads import abstrakt_job, get3w_task
from get3w_cli.records import Status

WORDS = [
    ("timeout", Status.FAILED), ("expired", Status.FAILED), ("error", Status.FAILED), ("aborted", Status.FAILED),
    ("failed", Status.FAILED), ("canceled", Status.CANCELLED), ("cancelled", Status.CANCELLED),
    ("deleted", Status.CANCELLED), ("pending", Status.CREATED), ("created", Status.CREATED),
    ("processing", Status.PROCESSING), ("succeeded", Status.COMPLETED), ("completed", Status.COMPLETED),
]


@pytest.mark.parametrize(("word", "status"), WORDS)
def test_each_documented_word_in_each_api(word: str, status: Status) -> None:
    """The same word means the same in a Get3W task, an Abstrakt job and the older event envelope."""
    assert get3w_task({"id": "t", "status": word}, api="v3").status is status
    assert get3w_task({"id": "t", "status": word.upper()}, api="v1").status is status
    assert abstrakt_job({"job_id": "j", "status": word}).status is status
    assert abstrakt_job({"event": "job.x", "data": {"request_id": "r", "status": word}}).status is status


@pytest.mark.parametrize(("word", "status", "code"), [
    ("timeout", "failed", 1), ("expired", "failed", 1), ("error", "failed", 1), ("aborted", "failed", 1),
    ("canceled", "cancelled", 1), ("deleted", "cancelled", 1), ("warming_up", "processing", 0),
])
def test_get_maps_the_word_and_exits_by_it(word: str, status: str, code: int) -> None:
    """g3w get: the record's status is the contract's word; failed and cancelled exit 1; an unknown
    word is processing (exit 0) and g3w says once that it did not know it."""
    answer = {"code": 200, "message": "success", "data": {"id": "pred_w1", "model": "get3w/flux-dev", "status": word}}
    with json_server(answer) as (url, asked):
        result = invoke("get", "pred_w1", "--api", "v3", "--json",
                        env={"GET3W_BASE_URL": url, "GET3W_API_KEY": "sk_test"})
    assert asked == ["/api/v3/predictions/pred_w1"]
    assert result.code == code, result.stderr
    assert result.json()["status"] == status and result.json()["raw"]["status"] == word
    mentions = result.stderr.count(f"unknown status {word!r}")
    assert mentions == (1 if status == "processing" else 0), result.stderr


def test_listen_mentions_an_unknown_word_once() -> None:
    """g3w listen: events with an unknown word print as processing; each word is mentioned once."""
    proc = Listen("--json", "--count", "1")
    try:
        posts: list[dict[str, Any]] = [
            {"id": "pred_a", "status": "warming_up"}, {"id": "pred_b", "status": "warming_up"},
            {"job_id": "job_c", "status": "queued_for_gpu"}, {"id": "pred_a", "status": "expired"},
        ]
        answers = [httpx.post(proc.url, content=json.dumps(p).encode()).status_code for p in posts]
        events = [proc.event() for _ in posts]
        assert proc.wait() == 0
    finally:
        proc.close()
    assert answers == [200, 200, 200, 200]
    assert [e["status"] for e in events] == ["processing", "processing", "processing", "failed"]
    assert proc.stderr.count("unknown status 'warming_up'") == 1
    assert proc.stderr.count("unknown status 'queued_for_gpu' from abstrakt") == 1


@contextmanager
def status_server(words: list[str]) -> Iterator[tuple[str, list[str]]]:
    """A stand-in Get3W v3 answering each GET of a task with the next word of ``words`` (the last
    one from then on); yields its URL and the paths asked."""
    asked: list[str] = []

    class Handler(StandInHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            word = words[min(len(asked), len(words)) - 1]
            task = {"id": "pred_w2", "model": "get3w/flux-dev", "status": word, "outputs": [], "error": None}
            self.send_json({"code": 200, "message": "success", "data": task})

    with serving(Handler) as url:
        yield url, asked


@pytest.mark.parametrize(("word", "status"), [
    ("timeout", "failed"), ("expired", "failed"), ("aborted", "failed"), ("canceled", "cancelled"),
])
def test_wait_waits_through_an_unknown_word_and_ends_by_the_final_one(word: str, status: str) -> None:
    """g3w wait, polling: a task reported with a word g3w does not know is waited through (said once
    on stderr, however many polls read it), and the final word ends the wait as the contract's
    status, exit 1."""
    with status_server(["warming_up", "warming_up", "warming_up", word]) as (url, asked):
        result = invoke("wait", "pred_w2", "--api", "v3", "--json", "--via", "poll", "--poll-max", "0.05",
                        "--timeout", "15", env={"GET3W_BASE_URL": url, "GET3W_API_KEY": "sk_test"})
    assert len(asked) >= 4 and set(asked) == {"/api/v3/predictions/pred_w2"}
    assert result.code == 1, result.stderr
    record = result.json()
    assert record["status"] == status and record["raw"]["status"] == word
    assert result.stderr.count("unknown status 'warming_up'") == 1, result.stderr
    assert f"unknown status {word!r}" not in result.stderr
