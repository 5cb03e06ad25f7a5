"""One ask: commit a question, send the branch to an LLM, commit the reply (what ``cairn ask`` and ``Session.ask`` do).

The branch keeps user and assistant turns alternating, whatever happens to
a call:

- The question is committed before the call, so an interrupted ask keeps it.
- A reply that breaks off while the process lives (Ctrl-C, a provider error
  after text arrived) is committed with what arrived, marked
  ``partial: true`` in its metadata with the usage estimated from the text
  (``finish_reason``: ``interrupted`` or the error's kind). When nothing
  arrived the reply is the marker text ``INTERRUPTED_REPLY``.
- A reply lost with the process (kill -9, a power cut) leaves the question
  unanswered at the tip; the next ask first commits the marker as that
  question's partial reply (no usage: none is known), so two user turns never
  follow each other.

``derive_metadata(head, reply_metadata)`` lets a caller add metadata computed
from the branch as each reply is committed (a session's running totals).

With ``tools`` the model may call tools: ``run_tools(response)`` commits
each call, runs it and commits its result (``cairn ask --tools`` does it
through the policy gate and the execution path), and the model is asked
again, at most ``MAX_TOOL_ROUNDS`` times, until it answers. A reply with
no text is committed as ``EMPTY_REPLY`` (empty text is refused at commit
time) with ``empty_reply: true``, so its usage stays in history.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from cairn.errors import BudgetExceededError, CairnError, ProviderError
from cairn.model import Commit, Dialogue, Operation

if TYPE_CHECKING:  # pragma: no cover
    from cairn.model import Content
    from cairn.providers import LLM

__all__ = [
    "ASK_MESSAGE",
    "EMPTY_REPLY",
    "INTERRUPTED_REPLY",
    "MAX_TOOL_ROUNDS",
    "REPLY_TOKENS",
    "AskResult",
    "ask",
    "unanswered_question",
]

#: Output tokens an ask reserves for the reply (at most the model's own limit).
REPLY_TOKENS = 4096
#: The commit message of an ask's question; a reply's is ``ASK_MESSAGE + ": reply"``.
ASK_MESSAGE = "cairn ask"
#: The text of a partial reply of which nothing arrived.
INTERRUPTED_REPLY = "[no reply: the ask was interrupted]"
#: What a reply without text is committed as (empty text is refused), with ``empty_reply`` in its metadata.
EMPTY_REPLY = "(the model replied with no text)"
#: With tools: how many times the model may call tools before it must answer.
MAX_TOOL_ROUNDS = 8

Derive = Callable[[Commit | None, Mapping[str, Any]], Mapping[str, Any]]


class Repo(Protocol):
    """What an ask needs of a ``cairn.repo.Repo`` (not imported: ``Repo.session`` leads here)."""

    def head(self) -> Commit | None: ...

    def content_of(self, commit: Commit) -> Content | None: ...

    def count_content(self, content: Content) -> int: ...

    def materialize(self, rev: str | None = None, **options: Any) -> Any: ...

    def maybe_compact(self) -> Any: ...

    @property
    def tokenizer(self) -> Any: ...

    def append(
        self,
        content: Content | Mapping[str, Any],
        *,
        message: str = "",
        reply_to: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        derive_metadata: Callable[[Commit | None], Mapping[str, Any]] | None = None,
    ) -> Commit: ...


@attrs.frozen
class AskResult:
    """The committed question and reply, the reply's text and metadata (provider, model, usage, cost ...)."""

    question: Commit
    reply: Commit
    content: str
    metadata: dict[str, Any]
    dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question.hash,
            "reply": self.reply.hash,
            "content": self.content,
            "dropped": self.dropped,
            **self.metadata,
        }


def unanswered_question(repo: Repo) -> Commit | None:
    """The branch's tip when it is an ask's question that got no reply (its process died), else None."""
    head = repo.head()
    if head is None or head.operation is not Operation.APPEND or head.message != ASK_MESSAGE:
        return None
    content = repo.content_of(head)
    return head if isinstance(content, Dialogue) and content.role == "user" else None


def _reply(
    repo: Repo,
    question: Commit,
    text: str,
    meta: Mapping[str, Any],
    derive: Derive | None,
) -> Commit:
    return repo.append(
        {"content_type": "dialogue", "role": "assistant", "text": text},
        message=ASK_MESSAGE + ": reply",
        reply_to=question.hash,
        metadata=meta,
        derive_metadata=(lambda head: derive(head, meta)) if derive is not None else None,
    )


def close_unanswered(repo: Repo, derive: Derive | None = None) -> Commit | None:
    """Commit the marker reply to an unanswered question at the tip (see the module docstring); the reply or None."""
    question = unanswered_question(repo)
    if question is None:
        return None
    meta = {"partial": True, "finish_reason": "interrupted", "usage": None, "cost": None}
    return _reply(repo, question, INTERRUPTED_REPLY, meta, derive)


def ask(
    repo: Repo,
    llm: LLM,
    text: str,
    *,
    model: str | None = None,
    budget: int | None = None,
    stream: bool = False,
    on_text: Callable[[str], None] | None = None,
    recorder: Any = None,
    images: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    derive_metadata: Derive | None = None,
    tools: Sequence[Any] | None = None,
    run_tools: Callable[[Any], None] | None = None,
) -> AskResult:
    """Ask ``llm`` about ``repo``'s branch: commit the question, the reply and its metadata.

    ``stream``: call ``on_text`` with each piece of the reply as it arrives.
    ``recorder``: a ``cairn.calls.CallRecorder`` (its run id goes in the
    reply's metadata). ``images``: a context manager factory yielding what
    ``materialize(images=...)`` reads images with, for models that take them.
    ``tools`` (the provider's tool specs) and ``run_tools``: see the module
    docstring. A failure raises the provider's error with a hint naming what
    was kept.
    """
    problem = llm.provider.readiness()
    if problem is not None:
        raise problem  # before committing anything: a question nobody can answer is not history
    caps = llm.capabilities(model)
    if tools is not None and not caps.tools:
        from cairn.errors import ValidationError

        raise ValidationError(
            f"{llm.name} model {model or '(the default)'} does not take tools",
            hint="ask without --tools, or choose a provider and model that take tools (`cairn providers`)",
        )
    reply_tokens = min(caps.max_output_tokens, REPLY_TOKENS) if caps.max_output_tokens else None
    limit = budget
    if caps.context_window is not None:
        room = caps.context_window - (reply_tokens or 0)
        limit = min(limit, room) if limit else room
    close_unanswered(repo, derive_metadata)
    question = repo.append({"content_type": "dialogue", "role": "user", "text": text}, message=ASK_MESSAGE)
    run_id = getattr(recorder, "run_id", None)
    if recorder is not None:
        recorder.note(prompt_commit=question.hash)
    received: list[str] = []
    request = None
    rounds = 0
    try:
        repo.maybe_compact()  # [context] compact_at: before the call as after each commit
        context = _context(repo, limit, images if caps.images else None)
        if question.hash not in {item.item for item in context.items}:
            asked = repo.content_of(question)
            assert asked is not None  # an append always carries its content
            raise BudgetExceededError(
                repo.count_content(asked), limit or 0, what="the question alone", hint="raise the budget, or ask less"
            )
        from cairn.providers import ChatRequest

        while True:
            request = ChatRequest(
                context.neutral_messages, model=model, max_output_tokens=reply_tokens, tools=tools or ()
            )
            received.clear()
            if stream:
                chunks = llm.stream(request)
                for piece in _texts(chunks):
                    received.append(piece)
                    if on_text is not None:
                        on_text(piece)
                response = chunks.response
                assert response is not None  # set once the stream ends
            else:
                response = llm.complete(request)
            if not response.tool_calls or tools is None or run_tools is None:
                break
            if rounds == MAX_TOOL_ROUNDS:
                raise ProviderError(
                    f"the model still called tools after {MAX_TOOL_ROUNDS} rounds without answering",
                    hint="ask more precisely, or without --tools",
                )
            rounds += 1
            run_tools(response)
            context = _context(repo, limit, images if caps.images else None)
    except (CairnError, KeyboardInterrupt) as exc:
        partial = None
        if request is not None:
            partial = _partial(repo, llm, request, question, "".join(received), exc, run_id, derive_metadata)
            if recorder is not None:
                recorder.note(reply_commit=partial.hash)
        if isinstance(exc, CairnError):
            kept = f"the question is kept as commit {question.short}"
            if partial is not None:
                kept += f" and the partial reply as {partial.short}"
            exc.hint = f"{exc.hint}; {kept}" if exc.hint else kept
        raise
    usage = response.usage.to_dict() if response.usage else None
    meta: dict[str, Any] = {
        "provider": response.provider,
        "model": response.model,
        "usage": usage,
        "cost": None if response.cost is None else round(response.cost, 12),  # no float noise in history
        "finish_reason": response.finish_reason,
        "request_id": response.request_id,
        "latency_ms": round(response.latency_s * 1000, 1),
        "context_tokens": context.token_count,
        "context_tokenizer": repo.tokenizer.name,  # whose estimate context_tokens is (`cairn status` compares)
    }
    if tools is not None:
        meta["tool_rounds"] = rounds
    if run_id is not None:
        meta["run_id"] = run_id
    said = response.content or ""
    if not said.strip():  # empty text is refused at commit time; the reply and its usage are still history
        said, meta["empty_reply"] = EMPTY_REPLY, True
    reply = _reply(repo, question, said, meta, derive_metadata)
    if recorder is not None:
        recorder.finish(
            prompt_commit=question.hash,
            reply_commit=reply.hash,
            budget=limit,
            **{k: meta[k] for k in ("provider", "model", "usage", "cost", "latency_ms", "finish_reason", "request_id")},
        )
    # Counted as far as the budget reached: the whole count would walk the whole history.
    return AskResult(question, reply, response.content or "", meta, dropped=len(context.dropped_so_far))


def _context(repo: Repo, limit: int | None, images: Callable[[], contextlib.AbstractContextManager[Any]] | None) -> Any:
    with images() if images is not None else contextlib.nullcontext() as reader:
        return repo.materialize(budget=limit, images=reader)


def _texts(chunks: Any) -> Iterator[str]:
    for chunk in chunks:
        if chunk.content:
            yield chunk.content


def _partial(
    repo: Repo,
    llm: LLM,
    request: Any,
    question: Commit,
    text: str,
    exc: BaseException,
    run_id: str | None,
    derive: Derive | None,
) -> Commit:
    """Commit what arrived of a broken-off reply, marked partial, with its usage estimated from the text."""
    from cairn.providers import Usage

    usage = Usage(
        input_tokens=llm.count_input(request),
        output_tokens=llm.tokenizer.count(text) if text else 0,
        estimated=True,
    )
    reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(getattr(exc, "kind", "error"))
    meta: dict[str, Any] = {
        "partial": True,
        "provider": llm.name,
        "model": request.model or llm.provider.default_model,
        "usage": usage.to_dict(),
        "cost": None,
        "finish_reason": reason if isinstance(exc, (KeyboardInterrupt, ProviderError)) else "error",
    }
    if run_id is not None:
        meta["run_id"] = run_id
    return _reply(repo, question, text or INTERRUPTED_REPLY, meta, derive)
