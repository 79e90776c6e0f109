"""Unit tests call `cli.main` in-process, and `main` configures logging for the process as the
real command must: the root logger's handlers (a stream handler on the sys.stderr of that
moment, which is pytest's capture file of that test) and levels. Restore them after each test,
or a later test's threads log into a closed file and see levels they did not set."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logger.level for name, logger in list(logging.root.manager.loggerDict.items())
              if isinstance(logger, logging.Logger)}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))
