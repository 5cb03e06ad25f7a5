"""Running an execution module: the kernel's one execution path, so no call skips the gate.

``execute(name, input, ...)``:

1. builds the module from ``[exec.<name>]`` and checks ``input`` against its
   schema (a bad input is a ``ValidationError``; nothing is recorded);
2. with a directive: requires it running (an approved one is started, by
   the single mutator) and links the run to it, both ways;
3. opens a run (type ``exec``, subtype the module) and asks the policy gate
   (``action = "exec"``: the module, its scopes, the paths it names, a
   digest of the input); the decision is a run event. Denied, or waiting for
   approval: the run closes as ``failed`` saying why, and the error is raised;
4. with an idempotency key: the call happens only if no earlier call
   recorded a result under the key for this same action; a repeat returns
   that result (``ExecOutcome.replayed``) without acting;
5. runs the module within its timeout and records the result as events; the
   run's status is the result's, mapped (``cairn.executor.RUN_STATUS``).

``exec:start`` and ``exec:end`` are published on the bus (metadata only), the
end before the run closes, so an observer sees the call inside its run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from cairn.errors import PolicyError
from cairn.events import EventBus
from cairn.events import bus as default_bus
from cairn.executor import ExecResult, Executor, check_input
from cairn.model import canonical_json, sha256_hex

__all__ = ["EXEC_END", "EXEC_START", "ExecOutcome", "execute"]

EXEC_START = "exec:start"
EXEC_END = "exec:end"


@attrs.frozen
class ExecOutcome:
    """The run that recorded the call, the result, and whether it was replayed from an idempotency key."""

    run_id: str
    result: ExecResult
    replayed: bool = False
    original_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            **self.result.to_dict(),
            "replayed": self.replayed,
            "original_run_id": self.original_run_id,
        }


def execute(
    name: str,
    input: Mapping[str, Any],
    *,
    config: Any,
    plugins: Any,
    store: Any,
    directive_id: str | None = None,
    idempotency_key: str | None = None,
    ledger: Any = None,
    bus: EventBus | None = None,
) -> ExecOutcome:
    """Run execution module ``name`` on ``input`` through the gate (see the module docstring)."""
    from cairn.config_tables import PolicySettings
    from cairn.directives import Directives
    from cairn.gate import Gate
    from cairn.ledger import Ledger
    from cairn.policy import Action, load_policy

    bus = bus or default_bus
    executor: Executor = plugins.create("executors", name, config)
    try:
        check_input(executor.input_schema, dict(input) if isinstance(input, Mapping) else input)
        input = dict(input)
        executor.check(input)
        policy = load_policy(config)
        directives = Directives(store, bus=bus) if directive_id is not None else None
        if directives is not None:
            directives.running(directive_id)  # type: ignore[arg-type]  # directives is set only with an id
        digest = sha256_hex(canonical_json(input, check_keys=False))
        action = Action(
            "exec",
            name,
            scopes=executor.scopes_for(input),
            directive=directive_id,
            details={"input_sha256": digest, "paths": list(executor.paths_for(input)), **executor.describe(input)},
        )
        ledger = ledger or Ledger(store, bus=bus, hooks=plugins.pm.hook, project_dir=config.project_dir or config.cwd)
        metadata = {
            "executor": name,
            "input_sha256": digest,
            "directive": directive_id,
            "idempotency_key": idempotency_key,
        }
        handle = ledger.open(
            "exec", subtype=name, summary=f"exec {name}", metadata={k: v for k, v in metadata.items() if v}
        )
        if directives is not None:
            directives.link_run(directive_id, handle.run_id)  # type: ignore[arg-type]  # as above
        gate = Gate(policy, store, directive_id=directive_id, run=handle, bus=bus)
        timeout = float(input.get("timeout_s", executor.timeout_s))

        def act() -> dict[str, Any]:
            gate.check(action)
            handle.event("exec.start", executor=name, scopes=list(action.scopes), timeout_s=timeout)
            bus.publish(EXEC_START, {"run_id": handle.run_id, "executor": name, "directive": directive_id})
            result = executor.execute(input, timeout_s=timeout)
            return {"run_id": handle.run_id, **result.to_dict()}

        try:
            if idempotency_key is None:
                recorded, replayed = act(), False
            else:
                from cairn.idempotency import Idempotency

                settings = config.settings("policy", PolicySettings)
                once = Idempotency(store, ttl=settings.idempotency_ttl, claim_ttl=settings.claim_ttl, bus=bus).run(
                    idempotency_key, act, fingerprint=action.hash
                )
                recorded, replayed = once.result, once.replayed
        except PolicyError as exc:
            handle.close("failed", summary=f"stopped by the policy gate: {exc.message}"[:500])
            raise
        except BaseException as exc:
            if handle.run.is_open:
                handle.close("failed", summary=f"{type(exc).__name__}: {exc}"[:500])
            raise
        result = ExecResult.from_dict(recorded)
        original = recorded["run_id"] if replayed else None
        events: list[dict[str, Any]] = [
            {"type": "exec.result", "status": result.status, "error": result.error, "output": result.output}
        ]
        if replayed:
            events = [{"type": "exec.replayed", "key": idempotency_key, "original_run_id": original}]
        bus.publish(
            EXEC_END,
            {
                "run_id": handle.run_id,
                "executor": name,
                "status": result.status,
                "replayed": replayed,
                "directive": directive_id,
                "error": result.error,
            },
        )
        handle.close(
            "ok" if replayed else result.run_status,
            summary=f"exec {name}: " + ("replayed " + str(original) if replayed else result.status),
            metadata={"exec_status": result.status, **({"replayed_from": original} if replayed else {})},
            events=events,
        )
        return ExecOutcome(handle.run_id, result, replayed, original)
    finally:
        executor.close()
