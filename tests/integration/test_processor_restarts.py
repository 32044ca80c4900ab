"""The processor survives SIGKILL and partition moves (real broker, child processes).

2. SIGKILL mid-stream and restart (devices sending their own records, and the same
   devices behind a gateway that bundles them per partition): windows resume for every
   device, beats and rhythm windows equal the offline twin's (no beat or window lost or
   invented outside a +-20 s band around the kill, measured: none inside either), the
   dead-letter topic holds the bad records the test sent, with their reasons, and nothing
   crashes.
4. Two workers share the group and one leaves mid-stream: the same, for a partition move.
"""

from __future__ import annotations

import base64
import time

import pytest

from cardiostream.schemas import decode_dead_letter
from streamer.harness import wait_assigned
from tests.integration.processor_support import (
    US,
    Streamer,
    assert_clean_log,
    bad_records,
    beats_by_device,
    check_resumed,
    check_rhythms,
    mitdb_devices,
    read_all,
    read_until_offline_beats,
    rhythm_starts,
    settings_for,
    start_worker,
)

pytestmark = pytest.mark.timeout(600)


@pytest.mark.slow
@pytest.mark.parametrize("gateway", [0, 4], ids=["device-records", "gateway-bundles"])
def test_worker_killed_mid_stream_resumes_every_device(topic_factory, data_dir, tmp_path,
                                                       gateway):
    settings = settings_for(topic_factory)
    seconds, speed, kill_at_s = 90.0, 2.0, 40.0
    start_us = time.time_ns() // 1000 - 60 * US
    names = ("100", "101", "105", "119", "208", "232")
    records, chunks = mitdb_devices(data_dir, "bed", names, seconds, start_us, sampto=33_000)
    bad = bad_records(chunks["bed-100"][3])
    streamer = Streamer(settings, chunks, speed,
                        [(10.0, k, v) for k, v, _ in bad] + [(70.0, k, v) for k, v, _ in bad],
                        gateway)

    first = start_worker(settings, tmp_path, "worker-1")
    wait_assigned([first], settings.topics.partitions)
    streamer.start()
    while streamer.device_s < kill_at_s:
        time.sleep(0.1)
    first.kill()
    killed_at_s = streamer.device_s
    time.sleep(2.0)
    second = start_worker(settings, tmp_path, "worker-2")
    try:
        streamer.join(timeout=seconds / speed + 60)
        assert streamer.error is None and not streamer.is_alive()
        twins, window_records = read_until_offline_beats(settings, records, start_us)
        offline = {d: w.beats for d, w in twins.items()}
        online = beats_by_device(window_records)
        dead = read_all(settings, settings.topics.dead_letter,
                         lambda recs: len(recs) >= 2 * len(bad), 60, quiet_s=2.0)
        assert second.running
    finally:
        second.stop()

    check_resumed(offline, online, start_us, killed_at_s)
    check_rhythms({d: w.rhythms for d, w in twins.items()}, rhythm_starts(window_records),
                   start_us + round(seconds * US))
    letters = [decode_dead_letter(r.value) for r in dead]
    got_letters = {(dl.reason, base64.b64decode(dl.raw_b64)) for dl in letters}
    assert {(reason, raw) for _, raw, reason in bad} <= got_letters
    assert all(dl.stage == "processor" for dl in letters)
    text = second.log_path.read_text(errors="replace")
    assert "warm-up" in text
    assert_clean_log(second)


# ----------------------------------------------------------------------------- 4


@pytest.mark.slow
def test_partitions_move_between_workers_without_losing_beats(topic_factory, data_dir,
                                                               tmp_path):
    """Two workers share the group; one leaves mid-stream, the other takes its partitions."""
    settings = settings_for(topic_factory)
    seconds, speed, leave_at_s = 70.0, 2.0, 30.0
    start_us = time.time_ns() // 1000 - 60 * US
    names = ("100", "103", "106", "118", "201", "215")
    records, chunks = mitdb_devices(data_dir, "mv", names, seconds, start_us, sampto=26_000)
    streamer = Streamer(settings, chunks, speed, [])
    stays = start_worker(settings, tmp_path, "stays")
    leaves = start_worker(settings, tmp_path, "leaves")
    try:
        owned = wait_assigned([stays, leaves], settings.topics.partitions)
        print(f"assignment before the move: stays {owned[0]}, leaves {owned[1]}")
        streamer.start()
        while streamer.device_s < leave_at_s:
            time.sleep(0.1)
        assert leaves.stop() == 0                      # SIGTERM: clean leave, rebalance
        assert wait_assigned([stays], settings.topics.partitions)
        streamer.join(timeout=seconds / speed + 60)
        assert streamer.error is None
        twins, window_records = read_until_offline_beats(settings, records, start_us)
        offline = {d: w.beats for d, w in twins.items()}
        online = beats_by_device(window_records)
        assert stays.running
    finally:
        stays.stop()
        leaves.stop()
    check_resumed(offline, online, start_us, leave_at_s)
    check_rhythms({d: w.rhythms for d, w in twins.items()}, rhythm_starts(window_records),
                   start_us + round(seconds * US))
    assert "warm-up" in stays.log_path.read_text(errors="replace")
    assert_clean_log(stays)
    assert_clean_log(leaves)

