"""memtui's engine: the scheduler, the job registry, run records and the jobs themselves.

Never imports Textual, and imports litellm only inside an LLM call.
"""
from memtui.engine.clock import FakeClock, system_clock
from memtui.engine.config import Config, ConfigError, load_config
from memtui.engine.engine import Engine, EngineError, open_engine
from memtui.engine.schedule import Schedule, ScheduleError
from memtui.engine.types import AuditEntry, EngineInfo, Event, JobInfo, RunInfo
from memtui.models import StoreError

__all__ = [
    "AuditEntry", "Config", "ConfigError", "Engine", "EngineError", "EngineInfo", "Event", "FakeClock", "JobInfo",
    "RunInfo", "Schedule", "ScheduleError", "StoreError", "load_config", "open_engine", "system_clock",
]
