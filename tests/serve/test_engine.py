"""Concurrency: clients alternating adapters at once get exactly what sequential calls give."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from samlora.predict.predictor import Predictor

from .conftest import expected_rles, predict, scene

ADAPTERS = ("a1", "a2", "vanilla")
PROMPTS = ({"boxes": [[10, 10, 80, 70]]}, {"points": [[40, 40], [100, 20]], "labels": [1, 0]})


def test_concurrent_clients_alternating_adapters_get_sequential_masks(
    server: str, sequential: Predictor
) -> None:
    images = [scene(s)[0] for s in (30, 31, 32)]  # 3 images x 3 adapters: more than the cache's 4 entries
    plan = [
        (i, a, p) for p in range(2) for i in range(3) for a in ADAPTERS
    ]  # the adapter changes every request
    expected = {(i, a, p): expected_rles(sequential, images[i], a, PROMPTS[p]) for i, a, p in plan}
    before = httpx.get(f"{server}/health").json()["cache"]

    def client(number: int) -> list[tuple[tuple, list[dict]]]:
        got = []
        with httpx.Client(base_url=server, timeout=120) as c:
            for j in range(8):
                i, a, p = plan[(number * 5 + j) % len(plan)]
                reply = predict(c, images[i], prompts=PROMPTS[p], adapter=a)
                assert reply.status_code == 200, reply.text
                got.append(
                    ((i, a, p), [inst["segmentation"] for inst in reply.json()["results"][0]["instances"]])
                )
        return got

    with ThreadPoolExecutor(6) as pool:
        answers = [item for one in pool.map(client, range(6)) for item in one]
    assert len(answers) == 48
    wrong = [key for key, rles in answers if rles != expected[key]]
    assert not wrong, f"{len(wrong)} answers differ from sequential calls: {wrong[:5]}"
    after = httpx.get(f"{server}/health").json()["cache"]
    assert after["entries"] <= after["capacity"] == 4
    assert after["evictions"] > before["evictions"]  # 9 (image, adapter) keys went through 4 entries
    with httpx.Client(base_url=server, timeout=120) as c:  # which requests hit depends on the interleaving;
        for _ in range(2):  # the same (image, adapter) twice in a row hits whatever came before
            assert predict(c, images[0], prompts=PROMPTS[1], adapter="a2").status_code == 200
    assert httpx.get(f"{server}/health").json()["cache"]["hits"] > after["hits"]
