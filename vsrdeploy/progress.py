"""Progress on the terminal (stderr) with ``rich``: one bar per target, advanced frame by frame, and
messages printed above the bars. Used by ``compare``, ``bench`` and calibration's recording phase."""
from __future__ import annotations


class FrameProgress:
    """``with FrameProgress() as p: p.message("..."); p.tick("ort-cpu/fp32", 3, 24)``.

    ``tick(label, done, total)`` creates the label's bar on first use. Off a terminal, rich draws the bars
    once, when the block ends, so logs get the final counts and no control characters."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._progress = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "FrameProgress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=Console(stderr=True),
                                      transient=False)
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def message(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            import click
            click.echo(text, err=True)

    def tick(self, label: str, done: int, total: int) -> None:
        if self._progress is None:
            return
        task = self._tasks.get(label)
        if task is None:
            task = self._tasks[label] = self._progress.add_task(label, total=total)
        self._progress.update(task, completed=done, total=total)
