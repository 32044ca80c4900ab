"""Redis goes away mid-write: the sink backs off, retries, and loses or reorders nothing.

Uses a private ``redis-server`` on a free port (the shared one on 16379 serves
everyone else's tests), stops it while a batch is being written, restarts it on
the same port and checks the stream afterwards.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time

import pytest
import redis

from cardiostream.schemas import Alarm, alarm_id, decode_alarm
from cardiostream.settings import RedisSettings
from inference.sink import Backoff, RedisSink, alarm_stream, make_client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(port: int, tmp) -> subprocess.Popen:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server not installed (cardiostream infra up installs it)")
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port).ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail("private redis-server did not start")


def alarm(i: int) -> Alarm:
    onset, device = 1_000_000 * i, f"bed-{i}"      # one patient each: no "already active"
    return Alarm(alarm_id(device, "vt", onset, "raised"), device, "ward-o", "vt", "red",
                 "raised", onset, onset + 1, onset + 1, "Ventricular tachycardia")


def test_outage_is_waited_out_in_order(tmp_path) -> None:
    port = free_port()
    proc = start_redis(port, tmp_path)
    client = make_client(RedisSettings(url=f"redis://127.0.0.1:{port}/0"))
    sink = RedisSink(client, maxlen=1000, backoff=Backoff(first_s=0.05, max_s=0.2))
    first = [alarm(i) for i in range(3)]
    assert sink.write(first, {}).written == 3
    proc.terminate()
    proc.wait(10)

    second = [alarm(i) for i in range(3, 6)]
    done: list[object] = []
    writer = threading.Thread(target=lambda: done.append(sink.write(second, {})), daemon=True)
    writer.start()
    time.sleep(1.0)
    assert writer.is_alive() and not done            # blocked, retrying: nothing dropped
    proc = start_redis(port, tmp_path)
    try:
        writer.join(15)
        assert done and done[0].written == 3
        entries = client.xrange(alarm_stream("ward-o"))
        onsets = [decode_alarm(f[b"alarm"]).onset_time_us // 1_000_000 for _, f in entries]
        # the restarted (empty, no persistence) server holds the second batch, in order
        assert onsets == [3, 4, 5]
    finally:
        proc.terminate()
        proc.wait(10)


def test_stop_request_while_down_raises_without_writing(tmp_path) -> None:
    port = free_port()
    client = make_client(RedisSettings(url=f"redis://127.0.0.1:{port}/0"))
    stop = threading.Event()
    sink = RedisSink(client, maxlen=10, backoff=Backoff(first_s=0.01, max_s=0.02),
                     should_stop=stop.is_set)
    stop.set()
    with pytest.raises(InterruptedError):
        sink.write([alarm(1)], {})
