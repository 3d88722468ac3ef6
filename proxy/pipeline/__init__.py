"""The request pipeline every entry point runs (see docs/architecture.md):

route -> authenticate -> authorize -> parse -> choose -> [per target, failover:
admit -> request filters -> send (retries, endpoint choice)] -> response filters
-> account (at finish: settle, lease, metrics, access log).
"""

from lockgate.proxy.pipeline.build import STEPS, StepFactory, build_pipeline
from lockgate.proxy.pipeline.context import Context, Kind
from lockgate.proxy.pipeline.deps import Deps
from lockgate.proxy.pipeline.pipeline import Pipeline
from lockgate.proxy.pipeline.step import Skip, Step

__all__ = ["STEPS", "Context", "Deps", "Kind", "Pipeline", "Skip", "Step", "StepFactory", "build_pipeline"]
