"""A progress bar that draws only on a terminal.

On a terminal the bar is redrawn in place (carriage returns); redirected to a
file or a pipe it draws nothing while it runs and writes one plain line at the
end, so that a log holds the summary and no ``\\r`` frames.

May use: the standard library only.
"""

import sys

__all__ = ["ProgressBar", "is_terminal"]


def is_terminal(stream):
    """Whether ``stream`` is an interactive terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class ProgressBar:
    """A one-line text progress bar on a stream (stderr by default).

    Args:
        total: how many steps make the whole.
        stream: where to write (default sys.stderr at construction).
        width: characters of the bar.
        interactive: draw the bar in place (default: whether ``stream`` is a
            terminal). When False, only :meth:`close` writes, one plain line.
    """

    def __init__(self, total, stream=None, width=30, interactive=None):
        self.total, self.width = total, width
        self.stream = sys.stderr if stream is None else stream
        self.interactive = is_terminal(self.stream) if interactive is None else interactive
        self.done, self.note = 0, ""

    def update(self, done, note=""):
        self.done, self.note = done, note
        if not self.interactive:
            return
        filled = int(self.width * done / self.total) if self.total else self.width
        bar = "#" * filled + " " * (self.width - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total} {note}")
        self.stream.flush()

    def close(self):
        if self.interactive:
            self.stream.write("\n")
        else:
            note = self.note.strip()
            self.stream.write(f"{self.done}/{self.total} done" + (f": {note}" if note else "")
                              + "\n")
        self.stream.flush()
