from __future__ import annotations

import datetime as dt
import itertools

import pytest

from cairn.model import format_time
from cairn.plugins import load_plugins
from cairn.repo import Repo
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore


class Clock:
    """A strictly increasing fake clock: one microsecond per reading."""

    def __init__(self) -> None:
        self._ticks = itertools.count()
        self.start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
        self.last = ""

    def __call__(self) -> str:
        self.last = format_time(self.start + dt.timedelta(microseconds=next(self._ticks)))
        return self.last


@pytest.fixture(scope="session")
def content_types():
    return load_plugins(entry_points=False).content_types


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("cairn.repo.now", clock)
    return clock


@pytest.fixture
def repo(content_types, clock) -> Repo:
    return Repo(MemoryStore(), WordTokenizer(), content_types)
