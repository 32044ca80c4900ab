"""AckGate: records leave a partition's queue in order, only when resumable, or forced."""

from __future__ import annotations

from streamer.ackgate import AckGate


def test_records_are_released_in_order_and_a_held_head_blocks_the_rest():
    gate = AckGate(max_hold_s=10.0)
    blocked = {"b"}

    def resumable(device: str, end_us: int) -> bool:
        return device not in blocked

    gate.add(0, "r0", [("a", 1)], now_s=0.0)
    gate.add(0, "r1", [("a", 2), ("b", 2)], now_s=0.0)
    gate.add(0, "r2", [("a", 3)], now_s=0.0)
    gate.add(1, "q0", [("c", 1)], now_s=0.0)
    assert gate.release(0, resumable, now_s=1.0) == ["r0"]      # r1 waits for b; r2 behind it
    assert gate.release_all(resumable, now_s=1.0) == ["q0"]
    blocked.clear()
    assert gate.release(0, resumable, now_s=2.0) == ["r1", "r2"]
    assert gate.held() == 0 and gate.forced == 0


def test_a_record_held_past_max_hold_is_released_and_counted():
    gate = AckGate(max_hold_s=5.0)
    gate.add(0, "r0", [("a", 1)], now_s=0.0)
    assert gate.release(0, lambda d, e: False, now_s=4.9) == []
    assert gate.release(0, lambda d, e: False, now_s=5.0) == ["r0"]
    assert gate.forced == 1


def test_dropped_partitions_are_forgotten_without_release():
    gate = AckGate()
    gate.add(3, "r0", [], now_s=0.0)
    gate.add(4, "s0", [], now_s=0.0)
    assert gate.drop({3}) == 1
    assert gate.release_all(lambda d, e: True, now_s=0.0) == ["s0"]
