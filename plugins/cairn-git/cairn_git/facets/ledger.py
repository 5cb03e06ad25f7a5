"""The ledger facet: runs, their events and spend, on the ledger branch with an annotated tag per run.

Layout (``cairn_git._ledger`` holds the file formats)::

    ledger/runs/<s>/<run_id>/run.json        the run, canonical JSON
    ledger/runs/<s>/<run_id>/events.jsonl    one event per line
    ledger/spend/<YYYY-MM-DD>/<id>.json      one spend record per file

Each run's ref points at an annotated tag whose message is its run.json,
so ``git for-each-ref`` lists every run in one call. Creating a run is a
``create`` of its ref (git refuses it if the run exists); closing one is an
``update`` from the tag that was read; both ride in the ledger commit's
transaction.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Sequence
from typing import Any

from cairn.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from cairn.model.ledger import Run, RunEvent, SpendRecord, validate_run_id
from cairn.storage import RunStore
from cairn_git import _ledger as ledger
from cairn_git._base import checked_keys, checked_limit, locked, writing
from cairn_git._git import BLOB_MODE, GitCommandError, parse_tag
from cairn_git._ledger_base import LedgerBase, LedgerChange

__all__ = ["GitLedger"]


class GitLedger(LedgerBase, RunStore):
    """``RunStore`` on the ledger branch and the run tags."""

    _runs: dict[str, Run]  # tag id -> the run in its message (tags never change)

    def _init_facet(self) -> None:
        super()._init_facet()
        self._runs = {}

    def _run_of_tag(self, oid: str, data: bytes) -> Run | None:
        run = self._runs.get(oid)
        if run is None:
            _, message = parse_tag(data)
            try:
                run = ledger.run_from_bytes(message)
            except (ValueError, TypeError, KeyError, ValidationError):
                return None
            self._runs[oid] = run
        return run

    def _stored_run(self, run_id: str) -> tuple[str, Run, str] | None:
        """(tag id, run, the commit the tag points at) of a stored run, or None."""
        found = self._cat.read([self._anchor(run_id)])[0]
        if found is None or found[1] != "tag":
            return None
        target, _ = parse_tag(found[2])
        run = self._run_of_tag(found[0], found[2])
        if run is None or run.run_id != run_id:
            raise IntegrityError(
                f"run {run_id}: its tag {found[0][:12]} holds " + ("no run" if run is None else f"run {run.run_id}"),
                hint=f"run `cairn check`; point {self._anchor(run_id)} back at the run's tag (from a clone)",
            )
        return found[0], run, target

    def _file(self, root: str | None, path: str) -> bytes | None:
        entry = self._trees.lookup(root, path)
        if entry is None:
            return None
        found = self._cat.read_one(entry[1])
        return found[2] if found is not None else None

    def _events_blob(self, root: str | None, run_id: str) -> bytes:
        return self._file(root, f"{ledger.run_dir(run_id)}/{ledger.EVENTS}") or b""

    def _tag(self, run: Run, target: str, message: bytes | None = None) -> str:
        message = ledger.run_bytes(run) if message is None else message
        return self._writer.tag(target, "commit", self._tag_name(run.run_id), self._ident(), message)

    @writing
    def put_run(self, run: Run, events: Sequence[RunEvent] = (), *, expected_status: str | None = None) -> None:
        """Write a run and append ``events`` in one ledger commit and one transaction (see ``RunStore.put_run``).

        Creating is a ``create`` of the run's ref (git refuses it if the run
        exists); closing is an ``update`` of it from the tag that was read.
        """
        if not isinstance(run, Run):
            raise ValidationError(f"expected a cairn.model.ledger.Run, got {type(run).__name__}", what="put_run")
        events = ledger.checked_events(run.run_id, events)
        if expected_status is None:
            self._create_runs([(run, events)])
            return
        anchor = self._anchor(run.run_id)
        directory = ledger.run_dir(run.run_id)
        message = ledger.run_bytes(run)
        record = self._writer.blob(message)

        moved: list[str] = []  # the run's tag before and after

        def plan(tip: str | None, root: str | None, attempt: int) -> LedgerChange:
            stored = self._stored_run(run.run_id)
            actual = stored[1].status if stored is not None else None
            if stored is None or actual != expected_status:
                raise ConflictError(f"run {run.run_id}", expected_status, actual)
            old_tag, _, target = stored
            existing = self._events_blob(root, run.run_id)
            ledger.refuse_taken(run.run_id, events, existing)
            tag = self._tag(run, target, message)  # the run keeps the commit it started on
            moved[:] = [old_tag, tag]
            return LedgerChange(
                {
                    f"{directory}/{ledger.RUN}": (BLOB_MODE, record),
                    f"{directory}/{ledger.EVENTS}": (
                        BLOB_MODE,
                        self._writer.blob(existing + ledger.event_lines(events)),
                    ),
                },
                f"run {run.run_id}: {run.status}",
                refs=lambda commit: [self._ref_command(anchor, tag, old_tag)],
                done=lambda: self._runs.__setitem__(tag, run),
            )

        self._update_ledger(f"writing run {run.run_id}", plan)
        # The run's messages follow it to its new tag (a second compare-and-swap: if this process stops
        # in between, the note stays on the old tag, still read by chat_messages, and the next sync moves it).
        if moved and self._cat.info([self.notes_ref])[0] is not None:
            self._move_notes({run.run_id: moved[1]}, [moved[0]])

    @writing
    def put_runs(self, runs: Sequence[tuple[Run, Sequence[RunEvent]]]) -> None:
        """Create many runs with their events in ONE ledger commit and one transaction; all or nothing.

        An id that exists (or appears twice in ``runs``) raises ``ConflictError`` and nothing is written.
        """
        batch = []
        for run, events in runs:
            if not isinstance(run, Run):
                raise ValidationError(f"expected a cairn.model.ledger.Run, got {type(run).__name__}", what="put_runs")
            batch.append((run, ledger.checked_events(run.run_id, events)))
        if batch:
            self._create_runs(batch)

    def _create_runs(self, batch: Sequence[tuple[Run, list[RunEvent]]]) -> None:
        seen: set[str] = set()
        for run, _ in batch:
            if run.run_id in seen:
                raise ConflictError(
                    f"run {run.run_id}",
                    None,
                    "in this batch",
                    hint="give every run in a batch its own id; nothing was written",
                )
            seen.add(run.run_id)
        anchors = [self._anchor(run.run_id) for run, _ in batch]
        files = {}
        messages = []
        for run, events in batch:
            directory = ledger.run_dir(run.run_id)
            messages.append(ledger.run_bytes(run))  # run.json and the tag's message: the same bytes
            files[f"{directory}/{ledger.RUN}"] = (BLOB_MODE, self._writer.blob(messages[-1]))
            files[f"{directory}/{ledger.EVENTS}"] = (BLOB_MODE, self._writer.blob(ledger.event_lines(events)))
        tags: list[str] = []
        head = self._head_commit()

        def refs(commit: str) -> list[str]:
            # Tags point at the user's HEAD commit, or at the ledger commit in a repository without commits.
            target = head() or commit
            tags[:] = [self._tag(run, target, message) for (run, _), message in zip(batch, messages, strict=True)]
            return [self._ref_command(anchor, tag, None) for anchor, tag in zip(anchors, tags, strict=True)]

        def plan(tip: str | None, root: str | None, attempt: int) -> LedgerChange:
            if attempt > 1:  # the last try lost: was it to an existing run (a conflict) or just to the ledger moving?
                for (run, _), found in zip(batch, self._cat.info(anchors), strict=True):
                    if found is not None:
                        stored = self._stored_run(run.run_id)
                        raise ConflictError(
                            f"run {run.run_id}",
                            None,
                            stored[1].status if stored else "exists",
                            hint="run ids are unique; nothing of this write was stored",
                        )
            message = f"run {batch[0][0].run_id}" if len(batch) == 1 else f"{len(batch)} runs"
            return LedgerChange(
                files,
                message,
                refs=refs,
                done=lambda: self._runs.update(zip(tags, (run for run, _ in batch), strict=True)),
            )

        self._update_ledger("recording runs", plan)

    @writing
    def append_events(self, run_id: str, events: Sequence[RunEvent]) -> None:
        """Append events to an open run (``NotFoundError`` if none, ``ConflictError`` if closed or a seq is taken).

        The run's ref is verified in the same transaction: a run closed meanwhile takes no events.
        """
        anchor = self._anchor(run_id)
        events = ledger.checked_events(run_id, events)
        path = f"{ledger.run_dir(run_id)}/{ledger.EVENTS}"

        def plan(tip: str | None, root: str | None, attempt: int) -> LedgerChange | None:
            stored = self._stored_run(run_id)
            if stored is None:
                raise NotFoundError("run", run_id, hint="create it with put_run first")
            tag, run, _ = stored
            if not run.is_open:
                raise ConflictError(
                    f"run {run_id}", "open", run.status, hint="the run is closed; events can no longer be added"
                )
            if not events:
                return None
            existing = self._events_blob(root, run_id)
            ledger.refuse_taken(run_id, events, existing)
            return LedgerChange(
                {path: (BLOB_MODE, self._writer.blob(existing + ledger.event_lines(events)))},
                f"run {run_id}: {len(events)} events",
                refs=lambda commit: [f"verify {anchor} {tag}"],
            )

        self._update_ledger(f"appending events to run {run_id}", plan)

    @locked
    def get_run(self, run_id: str) -> Run | None:
        """The run, or None. One ``cat-file`` round trip."""
        stored = self._stored_run(run_id)
        return stored[1] if stored is not None else None

    def _all_runs(self) -> dict[str, Run]:
        """Every anchored run by id, with one ``for-each-ref``.

        Tags never change, so runs already read are kept by tag id: once
        they are known, listing asks git only for the refs' object ids (no
        object is read), and the few new tags come through ``cat-file``.
        With nothing known yet, the one call reads every tag's message too.
        """
        if not self._runs:
            return self._read_all_runs()
        text = self._git.run("for-each-ref", "--format=%(objectname)", self.anchor_prefix).stdout.decode()
        oids = text.split()
        fresh = [oid for oid in oids if oid not in self._runs]
        if len(fresh) > 256:
            return self._read_all_runs()  # mostly unknown: reading every message in one call is cheaper
        for oid, found in zip(fresh, self._cat.read(fresh), strict=True):
            if found is not None and found[1] == "tag":
                self._run_of_tag(oid, found[2])
        runs = {}
        for oid in oids:
            run = self._runs.get(oid)
            if run is not None:
                runs[run.run_id] = run
        return runs

    def _read_all_runs(self) -> dict[str, Run]:
        """Read every run tag's message with one ``for-each-ref``, parsing while git is still writing.

        Each ref prints as ``["<tag id>",<message>],`` so any run of whole
        records is a JSON array: parsed in chunks as they arrive, the parse
        overlaps with git reading the tags. A message that is not a run (a tag
        someone else made) is skipped; ``check`` reports it.
        """
        proc = subprocess.Popen(
            self._git.command("for-each-ref", '--format=["%(objectname)",%(contents)],', self.anchor_prefix),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=self._git.env,
        )
        assert proc.stdout is not None
        runs: dict[str, Run] = {}
        pending = b""
        while True:
            # A pipe opened with default buffering is a BufferedReader; typeshed calls it IO[bytes].
            chunk = proc.stdout.read1(1 << 16)  # type: ignore[attr-defined]
            pending += chunk
            # Canonical JSON holds no raw newline, so "],\n" ends a record and nothing else.
            cut = pending.rfind(b"],\n") + 3 if chunk else len(pending)
            if cut > 2:
                self._parse_run_records(pending[:cut], runs)
                pending = pending[cut:]
            if not chunk:
                break
        stderr = proc.stderr.read() if proc.stderr is not None else b""
        if proc.wait() != 0:
            raise GitCommandError(
                ["for-each-ref", self.anchor_prefix], proc.returncode, stderr.decode(errors="replace")
            )
        return runs

    def _parse_run_records(self, text: bytes, runs: dict[str, Run]) -> None:
        try:
            pairs = json.loads(b"[" + text.rstrip().rstrip(b",") + b"]")
        except ValueError:
            pairs = [p for p in (_one_record(line) for line in text.split(b"],\n")) if p is not None]
        for item in pairs:
            try:
                oid, record = item
                run = ledger.run_from_record(record)
            except (ValueError, TypeError, KeyError, AttributeError, ValidationError):
                continue  # not a run: ``check`` reports it
            self._runs[oid] = run
            runs[run.run_id] = run

    @locked
    def list_runs(
        self,
        *,
        type: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        """Runs with ``since <= started_at <= until``, newest first (ties: run id descending). One git call."""
        n = checked_limit(limit)
        found = [
            r
            for r in self._all_runs().values()
            if (type is None or r.type == type)
            and (status is None or r.status == status)
            and (since is None or r.started_at >= since)
            and (until is None or r.started_at <= until)
        ]
        found.sort(key=lambda r: (r.started_at, r.run_id), reverse=True)
        return found if n is None else found[:n]

    @locked
    def run_events(self, run_id: str, *, after_seq: int | None = None) -> list[RunEvent]:
        """A run's events in seq order (after ``after_seq`` when given). One ``cat-file`` round trip."""
        validate_run_id(run_id)
        found = self._cat.read([f"{self.ledger_ref}:{ledger.run_dir(run_id)}/{ledger.EVENTS}"])[0]
        if found is None:
            return []
        events = ledger.parse_events(found[2])
        events.sort(key=lambda e: e.seq)
        return [e for e in events if after_seq is None or e.seq > after_seq]

    @writing
    def delete_runs(self, run_ids: Iterable[str]) -> int:
        """Delete runs and their events in one ledger commit and transaction; returns how many existed."""
        ids = checked_keys(run_ids, "delete_runs")
        anchors = [self._anchor(i) for i in ids]
        if not ids:
            return 0

        def plan(tip: str | None, root: str | None, attempt: int) -> LedgerChange:
            existing = [(a, f[0]) for a, f in zip(anchors, self._cat.info(anchors), strict=True) if f is not None]
            return LedgerChange(
                {ledger.run_dir(i): None for i in ids},
                f"delete {len(existing)} runs",
                refs=lambda commit: [self._ref_command(a, None, oid) for a, oid in existing],
                result=len(existing),
            )

        return self._update_ledger("deleting runs", plan) or 0

    @writing
    def add_spend(self, records: Sequence[SpendRecord]) -> None:
        """Append spend records, one file each on the ledger branch, in one commit."""
        items = list(records)
        for item in items:
            if not isinstance(item, SpendRecord):
                raise ValidationError(
                    f"expected a cairn.model.ledger.SpendRecord, got {type(item).__name__}", what="add_spend"
                )
        if not items:
            return
        edits = {ledger.spend_path(r): (BLOB_MODE, self._writer.blob(ledger.spend_bytes(r))) for r in items}
        self._update_ledger(
            "recording spend", lambda tip, root, attempt: LedgerChange(edits, f"spend: {len(items)} records")
        )

    @locked
    def spend(
        self, *, since: str | None = None, until: str | None = None, run_id: str | None = None
    ) -> list[SpendRecord]:
        """Spend records with ``since <= ts <= until`` (and of ``run_id``), oldest first."""
        _, root = self._read_ledger()
        files = self._ledger_files(
            root,
            ledger.SPEND_DIR,
            lambda day: (since is None or day >= since[:10]) and (until is None or day <= until[:10]),
        )
        parsed = self._parsed([oid for _, oid in files], ledger.spend_from_bytes)
        out = []
        for name, oid in files:
            record = parsed.get(oid)
            if (
                record is not None
                and (since is None or record.ts >= since)
                and (until is None or record.ts <= until)
                and (run_id is None or record.run_id == run_id)
            ):
                out.append((record.ts, name, record))
        out.sort(key=lambda item: (item[0], item[1]))
        return [record for _, _, record in out]


def _one_record(text: bytes) -> Any:
    """One ``["<tag id>",<message>`` record of ``_read_all_runs``, or None if its message is not JSON."""
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text + b"]")
    except ValueError:
        return None
