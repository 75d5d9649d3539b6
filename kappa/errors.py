"""The platform's error root, with the two branches a caller acts on differently.

- :class:`Refused`: the input or the configuration is wrong (a pipeline file, a range, a record, a
  version). Retrying changes nothing; the message says what to fix. ``kappa`` exits 2 with it.
- :class:`Unavailable`: a server did not answer or failed (Kafka, a store, the registry). Callers
  retry it; when they give up, ``kappa`` exits 1 naming the server.

Each client boundary translates its library's exceptions into these once, so code that reacts to a
failure tests a type, never the words of a message. Concrete classes keep their historical base
(``ValueError``, ``RuntimeError``, ``ConnectionError``) beside the root so that callers written
against those still catch them."""
from __future__ import annotations


class KappaError(Exception):
    """Every error the platform raises on purpose (anything else is a bug, shown with its traceback)."""


class Refused(KappaError):
    """Bad input or configuration: fix it, then run again (exit status 2)."""


class Unavailable(KappaError):
    """A server is unreachable or failing: retried, then reported naming the server (exit status 1)."""


def first_line(exc: BaseException) -> str:
    """An error's first line, for a log line or a status column (drivers' messages go on with hints
    and context lines); its class when it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
