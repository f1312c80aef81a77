"""Model helpers that need no store or server."""

import random
import time

from hotfn import models
from hotfn.models import call


def _ulid_digit_by_digit(value: int) -> str:
    return "".join(call._CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def test_call_ids_are_ulids_digit_for_digit():
    rng = random.Random(7)
    for value in [0, 2**128 - 1, 1 << 80, (1 << 80) - 1] + [rng.getrandbits(128) for _ in range(2000)]:
        assert call._ulid_text(value) == _ulid_digit_by_digit(value)


def test_call_ids_sort_by_time_and_differ():
    first = models.new_call_id()
    time.sleep(0.002)
    ids = [models.new_call_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(len(i) == 26 for i in ids)
    assert all(first < i for i in ids)
    assert set("".join(ids)) <= set(call._CROCKFORD)
