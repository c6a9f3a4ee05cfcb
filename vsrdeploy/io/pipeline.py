"""Decode, compute and encode overlapped: the source is read on one thread and the sink written on another,
each behind a bounded queue, while the caller's thread runs the network. Errors on either thread reach the
caller; stopping early stops both threads."""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class Prefetch:
    """Iterates ``items`` on a background thread, at most ``depth`` items ahead of the consumer."""

    def __init__(self, items: Iterable, depth: int = 4, name: str = "vsrdeploy-decode"):
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put(_Failure(e))

    def __iter__(self) -> Iterator:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)  # a reader blocked on a pipe cannot be interrupted; it is a daemon


class BackgroundWriter:
    """Calls ``write(*args)`` on a background thread for each ``put(*args)``; at most ``depth`` pending."""

    def __init__(self, write: Callable, depth: int = 4, name: str = "vsrdeploy-encode"):
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue  # drain after a failure
            try:
                self._write(*item)
            except BaseException as e:  # noqa: BLE001 - re-raised on the caller's thread
                self._error = e

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def put(self, *args) -> None:
        self._raise()
        while True:
            try:
                self._queue.put(args, timeout=0.1)
                return
            except queue.Full:
                self._raise()
                if not self._thread.is_alive():
                    raise RuntimeError("the writer thread stopped")

    def finish(self) -> None:
        """Waits for every pending write; raises the first write error."""
        self._queue.put(_DONE)
        self._thread.join()
        self._raise()

    def stop(self) -> None:
        """Stops without raising (the caller is already handling an error)."""
        self._error = self._error or RuntimeError("stopped")
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
