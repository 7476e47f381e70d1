"""The E-model's estimate moves the way listeners do: loss and delay make calls worse."""

from __future__ import annotations

import pytest

from agent import mos


def test_a_clean_call_scores_high_and_a_call_with_nothing_heard_scores_the_floor() -> None:
    assert mos.estimate("PCMU", 0.0, 0.5, 1.0) == 4.41  # G.107's ceiling for G.711: R 93.2
    assert mos.estimate("speex/16000", 100.0, None, None) == 1.0


@pytest.mark.parametrize("codec", ["pcmu", "speex", "opus", "something-new"])
def test_more_loss_is_never_better(codec: str) -> None:
    scores = [mos.estimate(codec, loss, 2.0, 40.0) for loss in (0, 1, 2, 5, 10, 20, 50)]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]


def test_delay_counts_only_past_100_ms_one_way() -> None:
    assert mos.delay_impairment(100.0) == 0.0
    assert mos.estimate("pcmu", 0, 0, 150.0) == mos.estimate("pcmu", 0, 0, 0.0)
    # 600 ms round trip (a satellite hop each way): noticeably worse, still intelligible.
    assert 3.5 < mos.estimate("pcmu", 0, 0, 600.0) < 4.2


def test_r_to_mos_matches_g107_annex_b_points() -> None:
    assert mos.r_to_mos(0) == 1.0 and mos.r_to_mos(100) == 4.5
    assert mos.r_to_mos(50) == pytest.approx(2.58, abs=0.01)
    assert mos.r_to_mos(80) == pytest.approx(4.02, abs=0.01)
