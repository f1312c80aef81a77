"""How much a run does. Every loop of the bench is bounded by a count from here (and every
wait by a timeout in the code that waits), so a run's length is known in advance: about
10-12 minutes for `full` on a 2-core machine, about 3 for `quick`."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    load_seconds: float
    load_rounds: int
    multi_routes: int
    # Issue 3: sequential keep-alive calls, rounds alternating with the baseline server.
    sequential_calls: int
    sequential_rounds: int
    # Cold-start mitigation: rounds of (route without min_warm, route with min_warm: 1).
    mitigation_functions: tuple[str, ...]
    mitigation_rounds: int
    # Nothing may run past this; a section that would is cut short and says so.
    budget_seconds: float = 20 * 60
    extra: dict = field(default_factory=dict)


FULL = Profile(
    name="full",
    functions=("python", "node", "java", "clojure", "framework"),
    ready_starts=5,
    rounds=5,
    hot_calls=200,
    cold_calls={"python": 8, "node": 8, "java": 8, "clojure": 6, "framework": 3},
    jit_containers=3,
    jit_calls=1000,
    overhead_functions=("python", "java"),
    overhead_rounds=5,
    overhead_hot_calls=400,
    overhead_cold_calls=4,
    load_clients=(1, 4, 8, 16, 64),
    load_seconds=3.0,
    load_rounds=3,
    multi_routes=8,
    sequential_calls=2000,
    sequential_rounds=3,
    mitigation_functions=("python", "node", "java", "clojure", "framework"),
    mitigation_rounds=3,
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
    overhead_rounds=2,
    overhead_hot_calls=200,
    overhead_cold_calls=2,
    load_clients=(1, 8, 16, 64),
    load_seconds=1.0,
    load_rounds=1,
    multi_routes=8,
    sequential_calls=2000,
    sequential_rounds=1,
    mitigation_functions=("python", "java"),
    mitigation_rounds=1,
    budget_seconds=8 * 60,
)

PROFILES = {p.name: p for p in (FULL, QUICK)}
