"""Writing the versioned context: commit, edit, delete, and pin / skip / unpin.

The other versioned-context commands: ``branch_cmd`` (branch, switch),
``inspect_cmd`` (log, show, diff, materialize, status) and
``maintenance_cmd`` (gc, fsck, export, import).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from cairn.cli._app import State, echo_json, pass_state, read_stdin, read_text_file
from cairn.cli.inspect_cmd import commit_dict
from cairn.errors import ValidationError

_F = TypeVar("_F", bound=Callable[..., Any])

#: The field ``--text`` fills for each built-in type.
TEXT_FIELD = {
    "instruction": "text",
    "dialogue": "text",
    "reasoning": "text",
    "output": "text",
    "artifact": "content",
}


def register(cli: click.Group) -> None:
    for command in (commit_command, edit_command, delete_command, pin_command, skip_command, unpin_command):
        cli.add_command(command)


# -- building content from options ---------------------------------------------


def _without_final_newline(text: str) -> str:
    # `echo x | cairn commit -` means "x": drop the one newline that ends the input, as git does for messages.
    return text[:-1] if text.endswith("\n") else text


def _read_text(text: str | None) -> str | None:
    if text == "-":
        return _without_final_newline(read_stdin("the text"))
    return text


def _loads(text: str, what: str) -> Any:
    """``json.loads`` for JSON typed on the command line: nesting past the parser's stack is a user error."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValidationError(
            f"{what} is nested too deeply to read", hint="cairn stores JSON nested at most 100 levels deep"
        ) from None


def _parse_pairs(pairs: tuple[str, ...], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=what)
        try:
            out[key] = _loads(value, f"{what} {key}")
        except ValueError:
            out[key] = value  # not JSON: the text itself
    return out


def _text_field(content_types: Any, content_type: str) -> str | None:
    """The field a plain TEXT argument fills: the built-ins' main text, or a field called ``text``."""
    import attrs

    cls = content_types.get(content_type)  # unknown type: a clear error listing the known ones
    if content_type in TEXT_FIELD:
        return TEXT_FIELD[content_type]
    return "text" if any(a.name == "text" for a in attrs.fields(cls)) else None


def _content_from_options(
    content_types: Any,
    content_type: str,
    text: str | None,
    role: str | None,
    payload: str | None,
    fields: tuple[str, ...],
    text_file: str | None = None,
) -> dict[str, Any]:
    if text_file is not None:
        if text is not None:
            raise click.UsageError("give the text as an argument or with --file, not both")
        text = _without_final_newline(read_text_file(text_file, "--file"))
    if payload is not None:
        raw = read_text_file(payload[1:], "--payload file") if payload.startswith("@") else _read_text(payload)
        try:
            data = _loads(raw or "", "--payload")
        except ValueError as exc:
            raise ValidationError(
                f"--payload is not valid JSON: {exc}", hint="pass a JSON object, @file.json, or - for stdin"
            ) from None
        if not isinstance(data, dict):
            raise ValidationError("--payload must be a JSON object")
        if "content_type" not in data:
            data["content_type"] = content_type
        data.update(_parse_pairs(fields, "--field"))
        return data
    data = {"content_type": content_type, **_parse_pairs(fields, "--field")}
    text = _read_text(text)
    if text is not None:
        field = _text_field(content_types, content_type)
        if field is None:
            raise ValidationError(
                f"type {content_type!r} takes no text",
                hint="give its fields with --payload '{...}' or --field KEY=VALUE",
            )
        data[field] = text
    elif not fields:
        field = _text_field(content_types, content_type)
        if field is not None:
            raise ValidationError(
                f"no text to commit: a {content_type} item needs its {field}",
                hint='give it as an argument (cairn commit "..."), as - to read standard input, '
                "or from a file with --file PATH",
            )
    if content_type == "dialogue":
        data.setdefault("role", role or "user")
    elif role is not None:
        raise click.BadParameter("--role only applies to dialogue", param_hint="--role")
    return data


content_options = [
    click.option("-t", "--type", "content_type", default="dialogue", show_default=True, help="Content type."),
    click.option("--role", help="Dialogue role: user, assistant or system (default user)."),
    click.option("-F", "--file", "text_file", metavar="PATH", help="Read the text from this UTF-8 file."),
    click.option("--payload", "payload", metavar="JSON|@FILE|-", help="The content as a JSON object."),
    click.option("--field", "fields", multiple=True, metavar="KEY=VALUE", help="Set a content field (repeatable)."),
    click.option("-m", "--message", default="", help="Commit message."),
    click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Commit metadata (repeatable)."),
    click.option("--json", "as_json", is_flag=True, help="Print the commit as JSON."),
]


def _with(options: list[Callable[[_F], _F]]) -> Callable[[_F], _F]:
    def decorate(function: _F) -> _F:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


# -- commit, edit, delete --------------------------------------------------------


@click.command("commit")
@click.argument("text", required=False)
@_with(content_options)
@click.option("--reply-to", metavar="REV", help="The commit this one answers.")
@pass_state
def commit_command(
    state: State,
    text: str | None,
    content_type: str,
    role: str | None,
    text_file: str | None,
    payload: str | None,
    fields: tuple[str, ...],
    message: str,
    meta: tuple[str, ...],
    as_json: bool,
    reply_to: str | None,
) -> None:
    """Append a content item. TEXT, or - to read it from stdin, or --file PATH."""
    repo = state.repo
    data = _content_from_options(repo.content_types, content_type, text, role, payload, fields, text_file)
    commit = repo.append(data, message=message, reply_to=reply_to, metadata=_parse_pairs(meta, "--meta"))
    _report(repo, commit, as_json)


@click.command("edit")
@click.argument("target")
@click.argument("text", required=False)
@_with(content_options)
@pass_state
def edit_command(
    state: State,
    target: str,
    text: str | None,
    content_type: str,
    role: str | None,
    text_file: str | None,
    payload: str | None,
    fields: tuple[str, ...],
    message: str,
    meta: tuple[str, ...],
    as_json: bool,
) -> None:
    """Replace the content of item TARGET in what is materialized.

    Without --type the item keeps its own type (and, for dialogue, its role).
    """
    repo = state.repo
    original = repo.resolve(target)
    ctx = click.get_current_context()
    if ctx.get_parameter_source("content_type") is click.core.ParameterSource.DEFAULT and original.content_type:
        content_type = original.content_type
        if content_type == "dialogue" and role is None and payload is None:
            role = getattr(repo.content_of(original), "role", None)
    data = _content_from_options(repo.content_types, content_type, text, role, payload, fields, text_file)
    commit = repo.edit(original.hash, data, message=message, metadata=_parse_pairs(meta, "--meta"))
    _report(repo, commit, as_json)


@click.command("delete")
@click.argument("target")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("--json", "as_json", is_flag=True, help="Print the commit as JSON.")
@pass_state
def delete_command(state: State, target: str, message: str, as_json: bool) -> None:
    """Remove item TARGET from what is materialized (history keeps it)."""
    repo = state.repo
    commit = repo.delete(target, message=message)
    _report(repo, commit, as_json)


def _report(repo: Any, commit: Any, as_json: bool) -> None:
    if as_json:
        echo_json(commit_dict(repo, commit))
        return
    where = repo.branch or "detached HEAD"
    what = commit.content_type or ""
    target = f" {commit.target[:12]}" if commit.target else ""
    click.echo(
        f"[{where} {commit.short}] {commit.operation.value}{target} {what} ({commit.token_count} tokens)".rstrip()
    )


# -- annotations -----------------------------------------------------------------


def _annotation_command(name: str, priority: str, doc: str) -> click.Command:
    @click.command(name, help=doc)
    @click.argument("targets", nargs=-1, required=True)
    @click.option("-r", "--reason", default="", help="Why, for the record.")
    @pass_state
    def command(state: State, targets: tuple[str, ...], reason: str) -> None:
        for target in targets:
            annotation = state.repo.annotate(target, priority, reason)
            click.echo(f"{annotation.target[:12]} {priority}")

    return command


pin_command = _annotation_command("pin", "pinned", "Always keep items in what is materialized.")

skip_command = _annotation_command("skip", "skip", "Leave items out of what is materialized (history keeps them).")

unpin_command = _annotation_command("unpin", "normal", "Return items to normal priority.")
