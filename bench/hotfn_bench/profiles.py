"""How much a run does. Every loop of the bench is bounded by a count from here (and every
wait by a timeout in the code that waits), so a run's length is known in advance: about
10 minutes for `full` on a 2-core machine (15 at most: budget_seconds stops it), about 2
for `quick`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    functions: tuple[str, ...]  # keys of functions.FUNCTIONS
    # Container start to ready frame, driven directly (no server): starts per function.
    ready_starts: int
    # Hot vs cold: rounds, each = (cold calls, then hot calls) per function, in turn.
    rounds: int
    hot_calls: int  # per round
    cold_calls: dict[str, int]  # per round, per function (JVM framework start-ups are slow)
    # JIT: fresh warm containers per function, sequential `sum` calls on each.
    jit_containers: int
    jit_calls: int
    # Overhead breakdown: functions, rounds, calls per variant per round.
    overhead_functions: tuple[str, ...]
    overhead_rounds: int
    overhead_hot_calls: int
    overhead_cold_calls: int
    # Load: wrk runs of load_seconds for every (clients, target), load_rounds times.
    load_clients: tuple[int, ...]
    load_seconds: float  # whole seconds (wrk's -d)
    load_rounds: int
    multi_routes: int
    # Issue 3: sequential keep-alive calls, rounds alternating with the baseline server.
    sequential_calls: int
    sequential_rounds: int
    # Cold-start mitigation: rounds of (route without min_warm, route with min_warm: 1).
    mitigation_functions: tuple[str, ...]
    mitigation_rounds: int
    # gVisor against runc: rounds of (cold calls, hot calls) per function and isolation.
    gvisor_functions: tuple[str, ...] = ("python", "node", "java")
    gvisor_rounds: int = 4
    gvisor_hot_calls: int = 200
    gvisor_cold_calls: int = 6
    # Measuring stops once this much time has passed (a scenario still running is cut short and
    # says so in the report), so that setup, measuring and report stay within 15 minutes.
    budget_seconds: float = 13.5 * 60


FULL = Profile(
    name="full",
    functions=("python", "node", "java", "clojure", "framework"),
    ready_starts=6,
    rounds=6,
    hot_calls=200,
    cold_calls={"python": 10, "node": 10, "java": 10, "clojure": 8, "framework": 3},
    jit_containers=5,
    jit_calls=1000,
    overhead_functions=("python", "java"),
    overhead_rounds=6,
    overhead_hot_calls=400,
    overhead_cold_calls=4,
    load_clients=(1, 4, 8, 16, 64),
    load_seconds=4.0,
    load_rounds=3,
    multi_routes=8,
    sequential_calls=2000,
    sequential_rounds=5,
    mitigation_functions=("python", "node", "java", "clojure", "framework"),
    mitigation_rounds=5,
)

QUICK = Profile(
    name="quick",
    functions=("python", "node", "java", "clojure", "framework"),
    ready_starts=2,
    rounds=2,
    hot_calls=100,
    cold_calls={"python": 4, "node": 4, "java": 4, "clojure": 3, "framework": 1},
    jit_containers=1,
    jit_calls=1000,
    overhead_functions=("python",),
    overhead_rounds=3,
    overhead_hot_calls=200,
    overhead_cold_calls=2,
    load_clients=(1, 4, 8, 16, 64),
    load_seconds=2.0,
    load_rounds=1,
    multi_routes=8,
    sequential_calls=2000,
    sequential_rounds=1,
    mitigation_functions=("python", "java"),
    mitigation_rounds=1,
    gvisor_functions=("python", "java"),
    gvisor_rounds=2,
    gvisor_hot_calls=100,
    gvisor_cold_calls=3,
    budget_seconds=4 * 60,
)

PROFILES = {p.name: p for p in (FULL, QUICK)}
