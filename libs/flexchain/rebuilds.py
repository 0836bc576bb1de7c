"""`POST /internal/rebuild` and `GET /internal/rebuild`: a running instance rebuilds partitions it
owns from the log, on an operator's word (`flexchain rebuild`).

The work is `Processor.rebuild_from_log` (under the loop's lock: the partitions' snapshots are
dropped, their state is folded again from offset 0, commands arriving meanwhile wait in their topic
and are decided once, afterwards). The POST starts it in the background and answers 202 at once;
the GET tells how far it is — `rebuild_progress_ratio` of each partition, the metric the processor
sets while folding — and, once done, each partition's digest (equal to `/internal/partitions`').

What is not rebuilt: a read model of other topics (order's catalogue and gift figures, loyalty's
member view) keeps no snapshot and is folded from the log at every start; it is not refolded here
(restart the instance for that), and the answer says so.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query
from pydantic import Field

from flexchain.answers import Answer, PartitionDigest, reads
from flexchain.runtime import NotOwned

if TYPE_CHECKING:
    from flexchain.host import Runtime


class RebuildPartition(Answer):
    EXAMPLE = {"progress": 1.0, **PartitionDigest.EXAMPLE}

    progress: float = Field(description="0…1: the share of the partition's event log folded so far")
    next_offset: int | None = Field(None, description="once done: the next offset of the event topic to fold")
    aggregates: int | None = None
    digest: str | None = Field(None, description="once done: SHA-256 of the rebuilt state (as /internal/partitions)")


class Rebuild(Answer):
    """The instance's forced rebuild from the log: the one running, or the last one."""

    EXAMPLE = {
        "instance": "0",
        "state": "done",
        "partitions": {"2": RebuildPartition.EXAMPLE},
        "started_at": 1795001860000,
        "seconds": 0.42,
        "not_rebuilt": "the read model of inventory.events, order.events is not refolded (restart the instance for that)",
    }

    instance: str
    state: Literal["idle", "running", "done", "failed"]
    partitions: dict[str, RebuildPartition] = Field(description="the partitions being (or last) rebuilt")
    started_at: int | None = Field(None, description="wall clock, ms")
    seconds: float | None = Field(None, description="how long it took (once done or failed)")
    error: str | None = Field(None, description="why it failed (the state is then rebuilt by a restart of the loop)")
    not_rebuilt: str | None = Field(None, description="what this instance serves that a rebuild does not refold")


class Rebuilds:
    """The forced rebuild of one instance: at most one at a time."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.state: Literal["idle", "running", "done", "failed"] = "idle"
        self.partitions: list[int] = []
        self.digests: dict[int, dict[str, Any]] = {}
        self.started_at: int | None = None
        self.seconds: float | None = None
        self.error: str | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self, partition: int | None) -> None:
        proc, instance = self.rt.processor, self.rt.settings.flexchain_instance_id
        if self.state == "running":
            raise HTTPException(409, f"instance {instance} is already rebuilding partitions {self.partitions}")
        if proc is None or not proc.ready.is_set():
            raise HTTPException(409, f"instance {instance} is not ready (starting, or taking partitions over): try again")
        owned = sorted(set(proc.states) | set(proc.stopped))
        if partition is not None and partition not in owned:
            raise HTTPException(409, f"instance {instance} does not own partition {partition}; it owns {owned}")
        if not owned:
            raise HTTPException(409, f"instance {instance} owns no partition (another instance has them all)")
        self.partitions = [partition] if partition is not None else owned
        self.state, self.error, self.seconds, self.digests = "running", None, None, {}
        self.started_at = int(time.time() * 1000)
        for p in self.partitions:  # before the answer: a GET right after it must not see the last rebuild's 1.0
            self.rt.metrics.rebuild_progress.labels(str(p)).set(0.0)
        self.task = asyncio.create_task(self._run(proc, list(self.partitions)), name="forced-rebuild")

    async def _run(self, proc: Any, partitions: list[int]) -> None:
        t0 = time.monotonic()
        try:
            self.digests = await proc.rebuild_from_log(partitions)
            self.state = "done"
        except NotOwned as exc:
            self.state, self.error = "failed", f"partitions {exc.partitions} moved to another instance meanwhile"
        except Exception as exc:
            self.state, self.error = "failed", repr(exc)[:500]
        self.seconds = round(time.monotonic() - t0, 3)

    def view(self) -> dict[str, Any]:
        name = f"flexchain_{self.rt.svc.name}_rebuild_progress_ratio"
        parts: dict[str, Any] = {}
        for p in self.partitions:
            ratio = self.rt.metrics.registry.get_sample_value(name, {"partition": str(p)})
            parts[str(p)] = {"progress": ratio or 0.0, **self.digests.get(p, {})}
        out: dict[str, Any] = {"instance": self.rt.settings.flexchain_instance_id, "state": self.state, "partitions": parts}
        for key in ("started_at", "seconds", "error"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        topics = list(getattr(self.rt.view, "topics", []))
        if topics:
            out["not_rebuilt"] = (
                f"the read model of {', '.join(topics)} is not refolded: it keeps no snapshot and is folded from the "
                "log at every start (restart the instance to refold it)"
            )
        return out


REFUSED: dict[int | str, dict[str, Any]] = {
    409: {"description": "not owned here (the detail names the partitions this instance owns), already running, or not ready"}
}


def add_rebuild_routes(app: FastAPI, rt: Runtime) -> None:
    rebuilds = Rebuilds(rt)

    @app.post("/internal/rebuild", status_code=202, response_model=Rebuild, response_model_exclude_unset=True, responses=REFUSED)
    async def start_rebuild(
        partition: Annotated[int | None, Query(ge=0, le=1_000_000, description="one partition; omit for every owned one")] = None,
    ) -> dict[str, Any]:
        """Rebuild owned partitions from the log: drop their snapshots, fold their event log from offset 0
        (README "Operating"). Processing and queries of this instance wait meanwhile, as at a
        rebalance; commands keep arriving in their topic and are applied once, afterwards. 202 at
        once; `GET /internal/rebuild` tells the progress."""
        rebuilds.start(partition)
        return rebuilds.view()

    @app.get("/internal/rebuild", **reads(Rebuild))
    async def rebuild_status() -> dict[str, Any]:
        """The forced rebuild running, or the last one (`idle`: none since the instance started)."""
        return rebuilds.view()
