"""One retrying HTTP session for every download.

Transport-level failures (connection errors, read timeouts, HTTP 429 and 5xx) are retried by
urllib3's :class:`~urllib3.util.retry.Retry` mounted on a :class:`requests.Session`, with
exponential backoff, honouring ``Retry-After``. Failures that only show once the body is read (a
truncated transfer, a body that is not valid JSON) are retried by :mod:`tenacity` with the same
budget and backoff.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from urllib3.util.retry import Retry

from kappaflow import __version__

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors raised while reading a body that came with a good status: worth another try.
BODY_ERRORS = (requests.exceptions.ChunkedEncodingError, requests.exceptions.JSONDecodeError)
#: Statuses retried by the transport: rate limiting and server-side failures.
RETRY_STATUSES = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class HttpSettings:
    """Timeout and retry budget of every request.

    Attributes:
        timeout_s: connect and read timeout of one attempt, in seconds.
        retries: retries after the first attempt, for each kind of failure.
        backoff_s: backoff factor: the n-th retry waits about ``backoff_s * 2 ** (n - 1)`` s.
    """

    timeout_s: float = 60.0
    retries: int = 5
    backoff_s: float = 1.0

    @classmethod
    def from_config(cls, online: dict[str, Any]) -> HttpSettings:
        """The settings from the ``online`` section of the workflow config."""
        return cls(timeout_s=online["timeout_s"], retries=online["retries"], backoff_s=online["backoff_s"])


class LoggedRetry(Retry):
    """urllib3's :class:`Retry` that logs each status-triggered retry as a warning.

    (urllib3 already logs the retries of connection errors and timeouts.)
    """

    def increment(
        self, method: str | None = None, url: str | None = None, *args: Any, **kwargs: Any
    ) -> Retry:
        """Count one more failure (raising ``MaxRetryError`` past the budget); log it if it was a status."""
        retry = super().increment(method, url, *args, **kwargs)
        response = kwargs.get("response", args[0] if args else None)
        if response is not None:
            log.warning("%s %s: HTTP %d; retrying (%s left)", method, url, response.status, retry.total)
        return retry


def make_session(settings: HttpSettings) -> requests.Session:
    """A session that retries connection errors, read timeouts, 429 and 5xx with exponential backoff."""
    policy = LoggedRetry(
        total=settings.retries,
        backoff_factor=settings.backoff_s,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=policy)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = f"kappaflow/{__version__}"
    return session


def get_json(session: requests.Session, url: str, settings: HttpSettings) -> Any:
    """GET ``url`` and decode its JSON body, retrying truncated or invalid bodies.

    Raises:
        requests.HTTPError: a 4xx status, or a 5xx one still there after every retry.
        requests.exceptions.JSONDecodeError: the body is still not JSON after every retry.
    """
    return _with_body_retries(lambda: _get(session, url, settings).json(), url, settings)


def get_bytes(session: requests.Session, url: str, settings: HttpSettings) -> bytes:
    """GET ``url`` and return its body, retrying truncated transfers."""
    return _with_body_retries(lambda: _get(session, url, settings).content, url, settings)


def download(session: requests.Session, url: str, dest: Path, settings: HttpSettings) -> None:
    """Download ``url`` to ``dest`` through ``<dest>.part``, renamed only once complete.

    A partial download therefore never looks finished: a leftover ``.part`` file is simply
    overwritten by the next attempt.
    """
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(get_bytes(session, url, settings))
    os.replace(part, dest)


def _get(session: requests.Session, url: str, settings: HttpSettings) -> requests.Response:
    response = session.get(url, timeout=settings.timeout_s)
    response.raise_for_status()
    return response


def _with_body_retries(call: Callable[[], T], url: str, settings: HttpSettings) -> T:
    def warn(state: RetryCallState) -> None:
        log.warning(
            "%s: %s; retry %d of %d in %.2f s",
            url,
            state.outcome.exception() if state.outcome else "failed",
            state.attempt_number,
            settings.retries,
            state.next_action.sleep if state.next_action else 0.0,
        )

    retrying = Retrying(
        retry=retry_if_exception_type(BODY_ERRORS),
        stop=stop_after_attempt(settings.retries + 1),
        wait=wait_exponential(multiplier=settings.backoff_s),
        before_sleep=warn,
        reraise=True,
    )
    return retrying(call)
