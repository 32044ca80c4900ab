"""`cardiostream replay`: recorded databases through the live pipeline, scored like evaluate.

Each record becomes one device (pseudonymous id) replayed by the simulator into
a fresh namespace of topics; the processor and inference worker run as real
subprocesses; the results topic (the audit trail) is collected, turned into one
WFDB annotation file per record with the same writer as ``cardiostream
annotate``, and scored with the same EC57 scorer as ``cardiostream evaluate``.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from cardiostream.schemas import BeatResult, RhythmResult, SchemaError, decode_result
from cardiostream.settings import Settings
from cardiostream.signal import DEFAULT_SPEC
from pipeline.launcher import Launcher
from pipeline.stack import infra_up, isolated, start_workers, wait_workers_settled


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    records: list[str]
    speed: str = "max"
    out: Path = Path("out/replay")
    ext: str = "cs"
    seconds: float | None = None
    compare: Path | None = None
    # A record's end is its device going silent: the processor emits the last beats when it
    # expires the device (settings.processor.device_idle_s after its last chunk), so wait
    # longer than that. Shortening device_idle_s is no shortcut: at max speed a partition can
    # wait tens of seconds for its turn, and an early expiry resets a device mid-record.
    idle_margin_s: float = 30.0


@dataclass(slots=True)
class Collected:
    beats: dict[str, list[BeatResult]] = field(default_factory=lambda: defaultdict(list))
    rhythms: dict[str, list[RhythmResult]] = field(default_factory=lambda: defaultdict(list))
    bad: int = 0
    last_arrival: float = field(default_factory=time.monotonic)

    @property
    def n_beats(self) -> int:
        return sum(len(v) for v in self.beats.values())


def collect_results(settings: Settings, stop: threading.Event, into: Collected) -> None:
    """Read the results topic from the beginning until ``stop``; keeps every result."""
    from kafka import KafkaConsumer

    from cardiostream.kafka_config import consumer_kwargs

    consumer = KafkaConsumer(settings.topics.results,
                             **consumer_kwargs(settings.kafka, group_id=None))
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=500).values():
                for rec in records:
                    into.last_arrival = time.monotonic()
                    try:
                        res = decode_result(rec.value)
                    except SchemaError:
                        into.bad += 1
                        continue
                    target = into.beats if isinstance(res, BeatResult) else into.rhythms
                    target[res.device_id].append(res)
    finally:
        consumer.close()


def _speed(text: str) -> float:
    return math.inf if text == "max" else float(text)


def run_replay(settings: Settings, cfg: ReplayConfig, console: Console) -> int:
    from streamer.simulator import DeviceSpec, Simulator

    run_id = uuid.uuid4().hex[:8]
    settings = isolated(settings, run_id)
    console.print(f"replay {run_id}: {len(cfg.records)} records at speed {cfg.speed}")
    infra_up(settings)
    devices = [DeviceSpec(f"replay-{i:03d}", name) for i, name in enumerate(cfg.records)]
    collected, stop = Collected(), threading.Event()
    collector = threading.Thread(target=collect_results, args=(settings, stop, collected),
                                 daemon=True)
    t0 = time.monotonic()
    with Launcher(settings) as launcher:
        start_workers(launcher, metrics=False)
        wait_workers_settled(launcher)
        collector.start()
        sim = Simulator(settings, devices, speed=_speed(cfg.speed), loop=False,
                        record_s=cfg.seconds, align_start_us=round(DEFAULT_SPEC.rhythm_hop_s * 1e6))
        stats = sim.run()
        console.print(f"simulator: {stats.chunks_sent} chunks in {stats.wall_s:.1f} s")
        quiet_s = settings.processor.device_idle_s + cfg.idle_margin_s
        _wait_quiet(collected, launcher, quiet_s, console)
        stop.set()
        collector.join(timeout=10)
    console.print(f"collected {collected.n_beats} beat results in {time.monotonic() - t0:.0f} s")
    return _write_and_score(settings, cfg, devices, sim.start_us, collected, console)


def _wait_quiet(collected: Collected, launcher: Launcher, idle_s: float,
                console: Console) -> None:
    while time.monotonic() - collected.last_arrival < idle_s:
        dead = launcher.check_alive()
        if dead:
            logs = launcher.settings.paths.run_dir / "logs"
            raise RuntimeError(f"worker(s) {dead} died during replay; see {logs}")
        time.sleep(1.0)
        console.print(f"  … {collected.n_beats} beats so far", end="\r")


def _write_and_score(settings: Settings, cfg: ReplayConfig, devices, start_us: dict[str, int],
                     collected: Collected, console: Console) -> int:
    from cardiostream.annotate import write_annotations
    from cardiostream.records import record_path
    from cardiostream.result_annotations import annotations_from_results
    from cardiostream.score_report import write_outputs
    from cardiostream.scoring import score_records

    cfg.out.mkdir(parents=True, exist_ok=True)
    fs_hz = 360.0
    for dev in devices:
        ann = annotations_from_results(collected.beats[dev.device_id],
                                       collected.rhythms[dev.device_id],
                                       start_us[dev.device_id], fs_hz)
        write_annotations(cfg.out, dev.record, cfg.ext, fs_hz, ann)
        header = record_path(settings.paths.mitdb, dev.record).with_suffix(".hea")
        (cfg.out / header.name).write_bytes(header.read_bytes())
    report = score_records(settings.paths.mitdb, cfg.out, cfg.records, cfg.ext,
                           convention="dechazal")
    write_outputs([report], cfg.out / "replay.json", cfg.out / "replay.md", cfg.out / "replay.png")
    console.print(f"scored: {cfg.out / 'replay.md'}")
    if cfg.compare is not None:
        return _compare(report, cfg.compare, cfg.out, cfg.ext, cfg.records, console)
    return 0


def _compare(report, evaluate_json: Path, out: Path, ext: str, records: list[str],
             console: Console) -> int:
    """Streamed vs offline: gross Se/+P per class (exit 1 above 0.1 points) and, when the
    offline annotation files sit beside the JSON, a beat-for-beat diff per record."""
    offline = json.loads(evaluate_json.read_text())
    offline = offline.get("dechazal", offline)
    summary = evaluate_json.parent / "summary.json"
    if summary.exists() and json.loads(summary.read_text()).get("rhythm_out_of_fold"):
        console.print("[yellow]warning:[/] that evaluation took each record's rhythm from "
                      "its cross-validation fold model, the live worker the shipped one: "
                      "rhythm marks and beats in AF context may differ (compare with "
                      "`cardiostream evaluate --rhythm-context exported`)")
    worst = 0.0
    for cls, stats in report.gross_classes.items():
        for key in ("se", "ppv"):
            a, b = stats.get(key), offline["classes"].get(cls, {}).get(key)
            if a is None or b is None:
                continue
            worst = max(worst, abs(a - b))
            console.print(f"{cls} {key}: stream {a:.2f} offline {b:.2f} diff {a - b:+.2f}")
    ann_dir = evaluate_json.parent / "annotations"
    if ann_dir.is_dir():
        diffs = {r: beat_differences(out, ann_dir, r, ext) for r in records}
        (out / "replay-vs-offline.json").write_text(json.dumps(diffs, indent=1) + "\n")
        keys = ("only_stream", "only_offline", "label_differs", "rhythm_differs")
        total = {k: sum(d[k] for d in diffs.values()) for k in keys}
        console.print(f"beat-for-beat vs {ann_dir}: {total}")
    return 0 if worst <= 0.1 else 1


def beat_differences(stream_dir: Path, offline_dir: Path, record: str, ext: str) -> dict:
    """Beats present in only one file, beats whose label differs, rhythm marks that differ."""
    import wfdb

    def read(directory: Path) -> tuple[dict[int, str], set[tuple[int, str]]]:
        ann = wfdb.rdann(str(directory / record), ext)
        beats = {int(s): y for s, y in zip(ann.sample, ann.symbol, strict=True) if y != "+"}
        marks = {(int(s), a) for s, y, a in zip(ann.sample, ann.symbol, ann.aux_note,
                                                strict=True) if y == "+"}
        return beats, marks

    (sb, sm), (ob, om) = read(stream_dir), read(offline_dir)
    common = sb.keys() & ob.keys()
    return {"only_stream": len(sb.keys() - ob.keys()), "only_offline": len(ob.keys() - sb.keys()),
            "label_differs": sum(sb[k] != ob[k] for k in common),
            "rhythm_differs": len(sm ^ om)}
