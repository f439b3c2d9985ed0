"""The run store and the run loop."""

from labeldist.runs.run import RunConfig, execute_run, load_data
from labeldist.runs.store import RunStore

__all__ = ["RunConfig", "RunStore", "execute_run", "load_data"]
