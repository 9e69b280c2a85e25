"""The pure parts of ``python -m benchmarks.load``: the bodies it generates, how it reads wrk's
result (load.lua's done() line) and which bodies wrk consumed, and the goal lines. wrk itself is
not run here (the benchmark is)."""

from __future__ import annotations

import json

import orjson
import pytest

from benchmarks import load
from tests.support.calls import ESB_PATH

# What load.lua's done() prints, among wrk's own lines: two threads, one with a failed reply.
CANNED = (
    "Running 10s test @ http://127.0.0.1:40000/api/c/compapi/v2/cc/"
    "batch_create_instance_association/\n"
    "  2 threads and 8 connections\n"
    'LOAD-RESULT {"duration_us":10004312,"requests":601,"bytes":2903412,'
    '"errors":{"connect":0,"read":0,"write":0,"status":1,"timeout":2},'
    '"latency_us":{"min":9012,"mean":132004.5,"max":402113,"p50":120113,"p90":190001,'
    '"p99":310220,"p999":400001},"threads":['
    '{"id":0,"bodies":900,"built":302,"replies":301,"ok":301,"bad_status":0,"bad_body":0,'
    '"exhausted":0,"first_error":""},'
    '{"id":1,"bodies":900,"built":301,"replies":300,"ok":299,"bad_status":1,"bad_body":0,'
    '"exhausted":0,"first_error":"HTTP 500: {\\u0022result\\u0022:false}"}]}\n'
    "Requests/sec:     60.07\n"
)


def test_bodies_are_esb_batches_of_the_given_pairs():
    pairs = [(11, 12), (13, 14)]
    line = load.body_line(3, pairs)
    assert b"\n" not in line
    body = orjson.loads(line)
    assert body["bk_obj_id"] == "load_src_3"
    assert body["bk_asst_obj_id"] == "load_dst_3"
    assert body["bk_obj_asst_id"] == "load_src_3_default_load_dst_3"
    assert body["details"] == [
        {"bk_inst_id": 11, "bk_asst_inst_id": 12},
        {"bk_inst_id": 13, "bk_asst_inst_id": 14},
    ]
    assert body["bk_app_code"] and body["bk_username"]


def test_shapes_spread_or_concentrate_the_batches():
    assert load.body_associations("mixed", 10) == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]
    assert load.body_associations("hot", 4) == [0, 0, 0, 0]


def test_wrk_threads_and_arguments():
    assert [load.wrk_threads(c) for c in (1, 2, 7, 8, 32, 64)] == [1, 2, 1, 2, 2, 2]
    argv = load.wrk_argv(
        "http://127.0.0.1:1" + ESB_PATH,
        load.LUA,
        connections=32,
        seconds=10,
        cycle=False,
        checks=load.REST_CHECKS,
    )
    assert argv[:4] == ["wrk", "-t2", "-c32", "-d10s"]
    script = argv.index("--")
    assert argv[script - 1].endswith(ESB_PATH)
    assert argv[script + 1 :] == [str(load.LUA), "2", "0", *load.REST_CHECKS]
    assert load.LUA.is_file()


def test_the_result_line_is_parsed_and_totalled():
    result = load.parse_wrk_output(CANNED)
    assert result["ok"] == 600
    assert result["replies"] == 601
    # One reply not OK, two timeouts.
    assert result["failed"] == 3
    assert result["latency_us"]["p99"] == 310220
    assert result["first_error"] == 'HTTP 500: {"result":false}'
    with pytest.raises(ValueError):
        load.parse_wrk_output("Running 10s test\nRequests/sec: 1\n")


def test_consumed_bodies_follow_the_threads_slices():
    threads = [
        {"id": 0, "built": 3, "bodies": 5},
        # Ran out: built one more than it had (the probe that stopped it).
        {"id": 1, "built": 3, "bodies": 2},
    ]
    assert load.consumed_bodies(threads, 2) == {0, 2, 4, 1, 3}


class FakeTarget:
    backend = "sqlite"

    def __init__(self) -> None:
        self.inserted: list[tuple[int, int, str, str]] = []

    def scalar(self, sql: str, *args: object) -> int:
        return 100

    def insert_instances(self, ranges) -> None:
        self.inserted += ranges


def test_the_pool_never_hands_out_an_instance_twice():
    target = FakeTarget()
    pool = load.PairPool(target)
    pool.ensure({0: 10, 1: 5})
    first = pool.take(0, 10)
    again = pool.take(0, 4)
    pool.give_back(0, again)
    assert pool.take(0, 4) == again
    used = [i for pair in first + again for i in pair]
    assert len(used) == len(set(used))
    assert min(used) > 100  # above every stored id
    sources = {s for s, _ in first}
    ranges = {obj: (first_id, count) for first_id, count, obj, _ in target.inserted}
    start, count = ranges["load_src_0"]
    assert sources <= set(range(start, start + count))
    pool.ensure({0: 3})  # enough left: nothing inserted
    assert len(target.inserted) == 4


def row(**changes) -> load.Row:
    values = dict(
        backend="postgresql",
        workers=2,
        shape="mixed",
        connections=32,
        threads=2,
        batch_size=200,
        seconds=10.0,
        ok_batches=800,
        failed=0,
        exhausted=0,
        p50_ms=100.0,
        p99_ms=300.0,
        max_ms=500.0,
        rss_peak_mb=300.0,
        committed_batches=810.0,
        server_cpu_s=8.1,
        postgres_cpu_s=8.1,
        wrk_cpu_s=0.2,
        settle_s=0.5,
        prepare_s=1.0,
        stored_before=0,
        idle_share=0.0,
        others_share=0.0,
        bodies=1000,
    )
    values.update(changes)
    return load.Row(**values)


def test_ceiling_and_goal():
    r = row()
    assert r.cpu_ms_per_batch == pytest.approx(20.0)
    assert r.ceiling_associations_per_s == pytest.approx(load.CORES / 0.02 * 200)
    goals = {g["shape"]: g for g in load.goal_lines([r, row(shape="hot", failed=1)])}
    assert goals["mixed"]["zero_errors"] and goals["mixed"]["p99_within_4x_p50"]
    assert goals["mixed"]["met"] == (r.ratio >= load.GOAL_RATIO)
    assert not goals["hot"]["met"] and not goals["hot"]["zero_errors"]
    assert load.goal_lines([row(connections=8)])[0] == {"shape": "mixed", "measured": False}
    json.dumps(r.as_dict())
