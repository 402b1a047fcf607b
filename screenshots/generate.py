"""Regenerate screenshots/*.svg from the demo database: python screenshots/generate.py

Runs the dashboard headless with ``run_test()`` on a demo store at a fixed
time, presses the keys a person would, and saves each screen with
``save_screenshot()``.
"""
from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ["TZ"] = "UTC"
time.tzset()

from memtui.engine import Engine, FakeClock  # noqa: E402
from memtui.engine.config import Config  # noqa: E402
from memtui.engine.demo import fill  # noqa: E402
from memtui.tui.app import MemtuiApp  # noqa: E402

NOW = datetime(2026, 11, 22, 9, 41, 0, tzinfo=timezone.utc)
SHOTS = {
    "main": [],
    "retime": ["t", "ctrl+u", *"1h30m"],
    "details": ["down", "enter"],
    "help": ["question_mark"],
    "memories": ["m"],
    "story": ["m", "enter"],
    "attached": ["n"],  # a dashboard beside a headless engine on another host, its engines panel open
}
ATTACHED = {"attached"}
HEADLESS = "worker-1:4242:5f3a9c1e"  # the headless engine the attached dashboard follows


def demo_engine(folder: str) -> Engine:
    random.seed(7)  # the rollup jobs' jitter: same pictures every time
    clock = FakeClock(NOW)
    engine = Engine(f"{folder}/demo.db", Config(), clock)
    fill(engine.store, clock())
    for minutes, job in ((0, "decay"), (1, "consolidate"), (2, "promote"), (3, "promote")):
        clock.set(NOW.replace(minute=minutes))
        engine.run_job(job)
        engine.remember("alice asked for a window seat this time", sender="alice", importance=8, confidence=0.9)
    clock.set(NOW)
    return engine


async def shoot(name: str, keys: list[str], size=(120, 32)) -> Path:
    with tempfile.TemporaryDirectory() as folder:
        engine = demo_engine(folder)
        if name in ATTACHED:
            host, pid, _ = HEADLESS.split(":")
            engine.store.m.EngineInstance.insert(id=HEADLESS, host=host, pid=int(pid), version="0.5.0",
                                                 started_at=NOW.timestamp() - 86400,
                                                 heartbeat_at=NOW.timestamp() - 4).execute()
            engine.attach()
        else:
            engine.start()  # alarms sit on the fake clock's timeline: nothing fires while we shoot
        app = MemtuiApp(engine, db_label="~/.local/share/memtui/memtui.db")
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            for key in keys:
                await pilot.press(key)
            await pilot.pause()
            path = app.save_screenshot(filename=f"{name}.svg", path=str(HERE))
        engine.stop()
        engine.close()
    return Path(path)


async def main() -> None:
    for name, keys in SHOTS.items():
        print(await shoot(name, keys))


if __name__ == "__main__":
    asyncio.run(main())
