"""testing_utils.assert_distinct: the precondition of every input that feeds a comparison or a report."""

from __future__ import annotations

import pytest

from clip_lora.testing_utils import assert_distinct


def test_distinct_numbers_pass_and_any_coinciding_pair_fails_naming_it():
    assert_distinct(b=1, c=4, n=9)
    assert_distinct(places=4, dev=0.5, val=0.5001)
    with pytest.raises(AssertionError, match=r"\('b', 'only_in_b'\)"):
        assert_distinct(b=3, c=4, only_in_b=3)
    with pytest.raises(AssertionError, match=r"\('dev', 'val'\)"):
        assert_distinct(places=4, dev=0.50001, val=0.50004)  # equal as the card prints them
