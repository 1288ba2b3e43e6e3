"""The micro-batcher on its own (no HTTP): concurrent jobs are scored in few predict calls,
each gets its own predictions in order, a bad job fails alone, batches stay bounded."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mlflowdsl.runtime.registry.serving.batching import Batcher


class Recording:
    """predict = each row's "x" doubled; a row with "x" = "bad" fails the whole call."""

    def __init__(self, delay: float = 0.0):
        self.calls: list[int] = []
        self.delay = delay
        self.gate = threading.Event()

    def score(self, rows, probabilities):
        if self.delay:
            self.gate.wait(self.delay)
        self.calls.append(len(rows))
        if any(row["x"] == "bad" for row in rows):
            raise ValueError("could not convert string to float: 'bad'")
        predictions = [row["x"] * 2 for row in rows]
        return predictions, [[1 - p / 100, p / 100] for p in predictions] if probabilities else None


def run(coro):
    return asyncio.run(coro)


def test_concurrent_jobs_share_predict_calls_and_keep_their_own_rows_in_order():
    model = Recording(delay=0.02)  # busy long enough for the other requests to queue up
    batcher = Batcher(model.score, max_rows=1000)

    async def main():
        jobs = [[{"x": i * 10 + j} for j in range(i % 3 + 1)] for i in range(32)]
        return jobs, await asyncio.gather(*(batcher.submit(rows) for rows in jobs))

    jobs, results = run(main())
    for rows, (predictions, probs) in zip(jobs, results):
        assert predictions == [row["x"] * 2 for row in rows] and probs is None
    assert sum(model.calls) == sum(len(rows) for rows in jobs)
    assert len(model.calls) <= 3  # the first alone (the model was idle), the rest together


def test_a_bad_row_fails_only_its_own_request():
    model = Recording(delay=0.02)
    batcher = Batcher(model.score)

    async def main():
        jobs = [[{"x": "bad"}] if i % 4 == 1 else [{"x": i}] for i in range(16)]
        return jobs, await asyncio.gather(*(batcher.submit(rows, i % 2 == 0) for i, rows in enumerate(jobs)),
                                          return_exceptions=True)

    jobs, results = run(main())
    for i, (rows, result) in enumerate(zip(jobs, results)):
        if rows[0]["x"] == "bad":
            assert isinstance(result, ValueError) and "'bad'" in str(result)
        else:
            predictions, probs = result
            assert predictions == [i * 2]
            assert (probs is not None) == (i % 2 == 0)


def test_batches_stay_within_max_rows_and_a_larger_request_runs_alone():
    model = Recording(delay=0.01)
    batcher = Batcher(model.score, max_rows=8)

    async def main():
        jobs = [[{"x": 1}] * 3 for _ in range(10)] + [[{"x": 2}] * 20]
        return await asyncio.gather(*(batcher.submit(rows) for rows in jobs))

    results = run(main())
    assert results[-1][0] == [4] * 20
    assert max(model.calls) == 20 and all(n <= 8 for n in model.calls if n != 20)


def test_light_traffic_is_scored_at_once_and_max_wait_gathers_more():
    model = Recording()
    batcher = Batcher(model.score)

    async def sequential():
        return [await batcher.submit([{"x": i}]) for i in range(5)]

    assert [r[0] for r in run(sequential())] == [[0], [2], [4], [6], [8]]
    assert model.calls == [1] * 5
    threads = set()
    alone = Batcher(lambda rows, probabilities: (threads.add(threading.current_thread()), (rows, None))[1])
    run(alone.submit([{"x": 1}]))
    assert threads == {threading.main_thread()}  # a lone request: no hand-over to the scoring thread
    waiting = Recording()
    patient = Batcher(waiting.score, max_wait_s=0.05)

    async def spread():
        async def later(i):
            await asyncio.sleep(0.005 * i)
            return await patient.submit([{"x": i}])
        return await asyncio.gather(*(later(i) for i in range(4)))

    assert [r[0] for r in run(spread())] == [[0], [2], [4], [6]]
    assert waiting.calls == [4]


def test_an_unexpected_model_error_reaches_the_requests_of_its_batch():
    def broken(rows, probabilities):
        raise RuntimeError("the model is broken")

    batcher = Batcher(broken)

    async def main():
        return await asyncio.gather(batcher.submit([{"x": 1}]), return_exceptions=True)

    assert isinstance(run(main())[0], RuntimeError)


@pytest.mark.parametrize("max_rows", [1, 2])
def test_tiny_batches(max_rows):
    model = Recording(delay=0.005)
    batcher = Batcher(model.score, max_rows=max_rows)

    async def main():
        return await asyncio.gather(*(batcher.submit([{"x": i}]) for i in range(6)))

    assert [r[0] for r in run(main())] == [[i * 2] for i in range(6)]
    assert all(n <= max_rows for n in model.calls)


class Featured(Recording):
    """A model with separate preprocessing: ``features`` fails on a bad row."""

    def __init__(self, delay: float = 0.0):
        super().__init__(delay)
        self.estimator_calls: list[int] = []

    def features(self, rows):
        import numpy as np

        return np.array([[float(row["x"])] for row in rows])  # ValueError on "bad"

    def score_features(self, features, probabilities):
        self.estimator_calls.append(len(features))
        return (features[:, 0] * 2).tolist(), None


def test_with_separate_preprocessing_bad_rows_do_not_cost_the_others_their_batch():
    model = Featured(delay=0.02)
    batcher = Batcher(model.score, features=model.features, score_features=model.score_features)

    async def main():
        jobs = [[{"x": "bad"}] if i % 5 == 2 else [{"x": i}, {"x": i + 1}] for i in range(21)]
        return jobs, await asyncio.gather(*(batcher.submit(rows) for rows in jobs), return_exceptions=True)

    jobs, results = run(main())
    for i, (rows, result) in enumerate(zip(jobs, results)):
        if rows[0]["x"] == "bad":
            assert isinstance(result, ValueError)
        else:
            assert result[0] == [2.0 * i, 2.0 * (i + 1)]
    # the 21 jobs were queued before the batcher first ran: their predict (38 rows) failed once (the
    # bad rows), then the 17 good requests (34 rows) went through the estimator in one call
    assert model.calls == [38] and model.estimator_calls == [34]
