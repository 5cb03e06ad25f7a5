"""``Plugins``: the loaded plugin set, its pluggy manager and its registries.

A plugin that fails to import, whose hook implementation has a bad signature
or a misspelled name, or whose registration hook raises, is recorded as
broken with the reason and skipped; the rest keeps working. Strict mode turns
such a failure into a ``PluginError``. A notification hook that raises after
the data was stored is counted (``cairn.plugin_failures``), and the plugin
kept.
"""

from __future__ import annotations

import contextvars
import inspect
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pluggy

from cairn import hookspecs
from cairn._version import kernel_version
from cairn.config import BACKEND_SECTIONS, Config
from cairn.errors import ConfigError, DuplicateNameError, PluginError
from cairn.model import Content, ContentTypes
from cairn.plugin_failures import NOTIFICATION_HOOKS, HookFailure, HookFailures
from cairn.plugins._describe import BUILTIN_PLUGIN, PluginInfo, entry_point_distributions
from cairn.plugins._registry import (
    REGISTRIES,
    CheckProblem,
    FactoryContext,
    NoConfig,
    Registration,
    Registry,
    importable,
)

__all__ = ["Plugins"]

_BACKEND_NAME = re.compile(r"\A[a-z][a-z0-9_]{0,63}\Z")

# Which plugin's hook is running: set around every registration hook call so
# a register() callback knows whom to credit (or blame).
_current_plugin: contextvars.ContextVar[str | None] = contextvars.ContextVar("cairn_plugin", default=None)


class Plugins:
    """The loaded plugin set: the pluggy manager, what each plugin is, and the registries."""

    def __init__(self, *, strict: bool = False, trace: bool = False) -> None:
        self.strict = strict
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self.registries: dict[str, Registry] = {kind: Registry(kind, label) for kind, (_, label) in REGISTRIES.items()}
        self.content_types = ContentTypes()
        #: Notification hooks that raised (or succeeded) in this process; the CLI reports and saves them.
        self.hook_failures = HookFailures()
        self._commands: dict[str, Any] | None = None
        if trace:
            self.pm.add_hookcall_monitoring(_trace_before, _trace_after)
        # Content types are historic: plugins registered later still get the call.
        self.pm.hook.cairn_register_content_types.call_historic(kwargs={"register": self._register_content_type})

    # -- the registries, by name -------------------------------------------------

    @property
    def storage(self) -> Registry:
        return self.registries["storage"]

    @property
    def tokenizers(self) -> Registry:
        return self.registries["tokenizers"]

    @property
    def llm(self) -> Registry:
        return self.registries["llm"]

    @property
    def embeddings(self) -> Registry:
        return self.registries["embeddings"]

    @property
    def evaluators(self) -> Registry:
        return self.registries["evaluators"]

    @property
    def vector_indexes(self) -> Registry:
        return self.registries["vector_indexes"]

    @property
    def artifact_stores(self) -> Registry:
        return self.registries["artifact_stores"]

    @property
    def executors(self) -> Registry:
        return self.registries["executors"]

    # -- registering plugins -------------------------------------------------------

    def register(self, plugin: object, name: str, *, module: str | None = None, builtin: bool = False) -> bool:
        """Register one plugin object (a module or an instance with hook implementations).

        Returns False (and records why) when the plugin is broken; raises in strict mode.
        """
        info = PluginInfo(
            name=name,
            module=module or str(getattr(plugin, "__name__", type(plugin).__name__)),
            status="ok",
            builtin=builtin,
        )
        self.info[name] = info
        problem = _misspelled_hooks(plugin, self.pm)
        if problem:
            return self._broken(name, problem)
        # Historic hooks (content types) run inside pm.register: credit them too.
        token = _current_plugin.set(name)
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            return self._broken(name, f"bad hook implementation: {exc}")
        except ValueError as exc:  # already registered under this name
            return self._broken(name, str(exc))
        except PluginError as exc:
            return self._broken(name, exc.problem, exc)
        except Exception as exc:
            return self._broken(name, f"a hook raised {type(exc).__name__}: {exc}", exc)
        finally:
            _current_plugin.reset(token)
        if info.status != "ok":
            return False
        info.hooks = sorted(
            caller.name for caller in (self.pm.get_hookcallers(plugin) or []) if caller.name.startswith("cairn_")
        )
        self._guard_hooks(plugin, name)
        if info.status == "ok":
            self._run_registrations(name)
        return info.status == "ok"

    def _guard_hooks(self, plugin: object, name: str) -> None:
        """Wrap the plugin's hook functions: credit registrations to it, isolate its exceptions."""
        for caller in self.pm.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not getattr(impl.function, "_cairn_guarded", False):
                    # pluggy declares the attribute Final; wrapping it in place is how a plugin's failure stays its own.
                    impl.function = self._guarded(impl.function, name, caller.name)  # type: ignore[misc]

    def _guarded(self, function: Callable[..., Any], plugin: str, hook: str) -> Callable[..., Any]:
        notification = hook in NOTIFICATION_HOOKS

        def guarded(*args: Any, **kwargs: Any) -> Any:
            token = _current_plugin.set(plugin)
            try:
                result = function(*args, **kwargs)
            except Exception as exc:
                if notification:
                    self._notification_failed(plugin, hook, exc)
                elif isinstance(exc, PluginError):
                    self._broken(plugin, exc.problem, exc)
                else:
                    self._broken(plugin, f"{hook} raised {type(exc).__name__}: {exc}", exc)
                return None
            finally:
                _current_plugin.reset(token)
            if notification:
                self.hook_failures.success(plugin, hook)
            return result

        # Marks on the wrapper, which Callable does not declare: wrapped once only, and the plugin's own
        # function reachable through __wrapped__ (inspect.unwrap), as functools.wraps would leave it.
        guarded._cairn_guarded = True  # type: ignore[attr-defined]
        guarded.__wrapped__ = function  # type: ignore[attr-defined]  # as above
        return guarded

    def _notification_failed(self, plugin: str, hook: str, exc: Exception) -> None:
        """A notification hook raised after the data was stored: count it, keep the plugin (see plugin_failures)."""
        failure = self.hook_failures.failure(plugin, hook, exc)
        info = self.info.get(plugin)
        if info is not None:
            info.note_failure(failure)
        if self.strict:
            raise PluginError(
                f"{hook} raised {failure.error}; {failure.kept}",
                plugin=plugin,
                hint="fix or uninstall the plugin, or run without --strict",
            ) from exc

    def remember_failures(self, failures: Iterable[HookFailure]) -> None:
        """Show failures recorded by earlier commands (``plugin_failures.load_failures``) in ``describe``."""
        for failure in failures:
            info = self.info.get(failure.plugin)
            if info is not None:
                info.note_failure(failure)

    def _run_registrations(self, plugin: str) -> None:
        for kind, (hook_name, _) in REGISTRIES.items():
            caller = getattr(self.pm.hook, hook_name)
            impls = [i for i in caller.get_hookimpls() if i.plugin_name == plugin]
            if not impls:
                continue
            others = [p for p in self.pm.get_plugins() if self.pm.get_name(p) != plugin]
            subset = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
            subset(register=self._registrar(kind))
            if self.info[plugin].status != "ok":
                return

    def _registrar(self, kind: str) -> Callable[..., None]:
        registry = self.registries[kind]

        def register(
            name: str,
            factory: Callable[[Any, FactoryContext], Any],
            config_cls: type | None = None,
            *,
            description: str = "",
            requires: Mapping[str, str] | None = None,
            check: Callable[[Any, FactoryContext], Iterable[CheckProblem]] | None = None,
        ) -> None:
            plugin = _current_plugin.get() or "?"
            if not isinstance(name, str) or not _BACKEND_NAME.match(name):
                raise PluginError(
                    f"{registry.label} name {name!r} is not valid: use lowercase letters, digits and '_', "
                    "starting with a letter (it must work as a TOML key and in CAIRN__... variables)",
                    plugin=plugin,
                )
            if not callable(factory):
                raise PluginError(f"{registry.label} {name!r}: factory {factory!r} is not callable", plugin=plugin)
            if config_cls is not None and not attrs.has(config_cls):
                raise PluginError(
                    f"{registry.label} {name!r}: config class {config_cls!r} is not an attrs class",
                    plugin=plugin,
                    hint="declare it with @attrs.frozen",
                )
            requires = dict(requires or {})
            if not all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in requires.items()):
                raise PluginError(
                    f"{registry.label} {name!r}: requires must map module names to what to pip install",
                    plugin=plugin,
                    hint='e.g. requires={"tiktoken": "cairn-tokenizers[tiktoken]"}',
                )
            if check is not None and not callable(check):
                raise PluginError(f"{registry.label} {name!r}: check {check!r} is not callable", plugin=plugin)
            registry.add(
                Registration(kind, name, factory, config_cls or NoConfig, plugin, description, requires, check)
            )
            if plugin in self.info:
                self.info[plugin].registers.setdefault(kind, []).append(name)

        return register

    def _register_content_type(self, cls: type[Content]) -> None:
        plugin = _current_plugin.get() or "?"
        self.content_types.register(cls, plugin=plugin)
        if plugin in self.info:
            self.info[plugin].registers.setdefault("content_types", []).append(cls.content_type)

    def _broken(self, name: str, reason: str, cause: BaseException | None = None) -> bool:
        info = self.info.get(name)
        if info is not None:
            info.status = "broken"
            info.reason = reason
            info.registers = {}
        for registry in self.registries.values():
            registry.drop_plugin(name)
        self.content_types.drop_owner(name)
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        if self.strict:
            if isinstance(cause, PluginError):
                raise cause  # keep its type (DuplicateNameError ...) and its hint
            raise PluginError(
                reason, plugin=name, hint="fix or uninstall the plugin, or run without --strict"
            ) from cause
        return False

    def commands(self, reserved: Iterable[str] = (), extensible: Iterable[str] = ()) -> dict[str, Any]:
        """The click commands plugins add, by name (computed once per plugin set).

        A name that clashes with ``reserved`` (the built-in commands) or with
        another plugin's command is refused: the later plugin is reported
        broken with an error naming both. A group named in ``extensible`` (a
        built-in group plugins may add subcommands to, such as ``mcp``) is
        not a clash: its subcommands extend the built-in group, which finds
        them under that name here.
        """
        open_groups = set(extensible)
        if self._commands is None:
            import click

            owners: dict[str, str] = {name: BUILTIN_PLUGIN for name in reserved}
            found: dict[str, Any] = {}

            class Collector(click.Group):
                def add_command(self, cmd: click.Command, name: str | None = None) -> None:
                    name = name or cmd.name
                    assert name is not None, "a click command always has a name"
                    plugin = _current_plugin.get() or "?"
                    if name in open_groups and isinstance(cmd, click.Group):
                        joined = found[name][0] if name in found else click.Group(name)
                        for sub_name, sub in cmd.commands.items():
                            if sub_name in joined.commands:
                                raise DuplicateNameError("command", f"{name} {sub_name}", "another plugin", plugin)
                            joined.add_command(sub, sub_name)
                        found[name] = (joined, plugin)
                        return
                    if name in owners and owners[name] != plugin:
                        raise DuplicateNameError("command", name, owners[name], plugin)
                    owners[name] = plugin
                    found[name] = (cmd, plugin)

            self.pm.hook.cairn_register_commands(cli=Collector("cairn"))
            # A plugin found broken while adding commands loses all of them.
            self._commands = {
                name: cmd
                for name, (cmd, plugin) in found.items()
                if self.info.get(plugin) is None or self.info[plugin].status == "ok"
            }
            for name, (_, plugin) in found.items():
                if name in self._commands and plugin in self.info:  # `cairn plugins` lists them with the rest
                    self.info[plugin].registers.setdefault("commands", []).append(name)
        return self._commands

    # -- using registrations -----------------------------------------------------

    def create(self, kind: str, name: str, config: Config | None = None) -> Any:
        """Build the ``kind`` backend called ``name`` from its config table.

        Errors in the table name the file, the table and the key; a module
        the backend needs and cannot import is named with what to install.
        """
        from cairn.config_check import missing_module_error, unknown_backend_error

        registry = self.registries[kind]
        if name not in registry:
            located = unknown_backend_error(self, kind, name, config)
            if located is not None:
                raise located
        registration = registry.get(name)
        base, argument = Registry.split(name)
        missing = registration.missing()
        if missing:
            raise missing_module_error(registration, name, *missing[0], config=config)
        section = BACKEND_SECTIONS[kind]
        if config is not None:
            settings: Any = config.structure_table((section, base), registration.config_cls)
            project_dir, data_dir = config.project_dir, config.data_dir
        else:
            settings = registration.config_cls()
            project_dir, data_dir = None, Path.cwd() / ".cairn"
        context = FactoryContext(base, argument, project_dir, data_dir, config)
        try:
            return registration.factory(settings, context)
        except ModuleNotFoundError as exc:
            # A dependency the plugin did not declare in `requires`: still say what is missing.
            if not exc.name or importable(exc.name):
                raise
            raise missing_module_error(registration, name, exc.name, None, config=config) from exc

    def check_config(self, config: Config) -> list[ConfigError]:
        """Every problem ``cairn config validate`` reports: kernel tables, backend names and tables,
        modules the chosen backends need, and each backend's own ``check``."""
        from cairn.config_check import check_config

        return check_config(self, config)

    def describe(self) -> list[PluginInfo]:
        """Every known plugin with its distribution and version filled in."""
        dists = entry_point_distributions()
        out = []
        for info in sorted(self.info.values(), key=lambda i: (not i.builtin, i.name)):
            if info.builtin:
                info.distribution, info.version = "cairn", kernel_version()
            elif info.name in dists:
                info.distribution, info.version = dists[info.name]
            out.append(info)
        return out


def _misspelled_hooks(plugin: object, pm: pluggy.PluginManager) -> str | None:
    """A ``cairn_*`` function that matches no hookspec is almost always a typo: report it."""
    known = {name for name in dir(pm.hook) if name.startswith("cairn_")}
    for attr in dir(plugin):
        if not attr.startswith("cairn_") or attr in known:
            continue
        value = getattr(plugin, attr, None)
        if not callable(value) or inspect.isclass(value):
            continue
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is None and not hasattr(value, "cairn_impl"):
            continue  # not marked as a hook: a private helper with an unlucky name
        if opts and opts.get("optionalhook"):
            continue
        import difflib

        guess = difflib.get_close_matches(attr, sorted(known), n=1)
        suggestion = f"; did you mean {guess[0]}?" if guess else ""
        return f"{attr} is not a cairn hook{suggestion}"
    return None


def _trace_before(hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
    plugins = ",".join(impl.plugin_name for impl in hook_impls)
    args = ", ".join(f"{k}={_short_repr(v)}" for k, v in kwargs.items())
    print(f"cairn hook: {hook_name}({args}) -> [{plugins}]", file=sys.stderr)


def _trace_after(
    outcome: pluggy.Result[Any], hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
) -> None:
    exc = outcome.exception
    if exc is not None:
        print(f"cairn hook: {hook_name} raised {type(exc).__name__}: {exc}", file=sys.stderr)


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
