"""Starting a private Ray instance, or joining a Ray cluster, for :mod:`vidsr.scaleout.ray`.

A local run (no address) starts its own Ray, never a running one: it listens on 127.0.0.1
only and uses token authentication with a token made for this run and kept in the
environment of its processes, so nothing is written to ``~/.ray`` and Ray prints no notice.

A cluster run first asks the cluster, quietly, whether it wants a token, and then joins
in the same mode with the token Ray itself would use (``RAY_AUTH_TOKEN``, else the file
``RAY_AUTH_TOKEN_PATH`` names, else ``~/.ray/auth_token``). Ray's own
``ray.init(address=...)`` sends no token unless ``RAY_AUTH_MODE=token`` is set, while
``ray start --head`` turns authentication on when it finds ``~/.ray/auth_token`` (which
Ray's own local ``ray.init()`` leaves behind), so such a head refused the join; a missing
or wrong token is now one line saying how to fix it.

Ray reads ``RAY_AUTH_*`` once, when imported; :func:`_reload_auth` makes it read them again.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

from vidsr.errors import BackendUnavailable

TOKEN_HELP = ("print the cluster's token with `ray get-auth-token` on its head node, then set RAY_AUTH_TOKEN "
              "to it here (or RAY_AUTH_TOKEN_PATH to a file holding it, or save it as ~/.ray/auth_token)")
_TIMEOUT_HELP = "is `ray start --head` running there, and is the port open?"


@contextlib.contextmanager
def ray_session(ray, *, address: str | None, num_cpus: int, object_store_mb: int) -> Iterator[None]:
    """Start a private local Ray (``address=None``) or join the cluster at ``address`` for the block.

    A Ray already initialised in this process (a test, a notebook, a Ray Job's driver) is
    used as it is and left running. Otherwise the environment is put back as it was once Ray
    is shut down: this module's settings (the local run's token...) and those ``ray.init``
    makes itself (``PYTHONBREAKPOINT``, ``RAY_USAGE_STATS_ENABLED``...).

    Raises:
        BackendUnavailable: Ray cannot be started, or the cluster cannot be reached or refuses
            this machine's token.
    """
    if ray.is_initialized():
        yield
        return
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    where = f"the Ray cluster at {address}" if address else "a local Ray instance"
    if address is None:
        env, init = _local_env(), {"address": "local", "num_cpus": num_cpus,
                                   "object_store_memory": object_store_mb << 20}
    else:
        mode = _cluster_auth_mode(address)
        env, init = ({} if mode is None else {"RAY_AUTH_MODE": mode}), {"address": address}
    with _restored_environ(), _ray_env(env, loopback=address is None):
        try:
            ray.init(**init, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise BackendUnavailable(f"cannot start or reach {where}: {e}") from None
        except getattr(ray.exceptions, "AuthenticationError", ()):  # RAY_AUTH_MODE=token, no token
            raise BackendUnavailable(f"cannot reach {where}: it uses token authentication and no token was "
                                     f"found: {TOKEN_HELP}") from None
        try:
            yield
        finally:
            ray.shutdown()


def token_source() -> str | None:
    """Where the token Ray would send comes from (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH=...``,
    ``~/.ray/auth_token``), or None when there is none.

    Raises:
        BackendUnavailable: ``RAY_AUTH_TOKEN_PATH`` names a file that cannot be read or is empty
            (Ray aborts the process on it).
    """
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if named:
        try:
            if Path(named).expanduser().read_text().strip():
                return f"RAY_AUTH_TOKEN_PATH={named}"
        except OSError:
            pass
        raise BackendUnavailable(f"RAY_AUTH_TOKEN_PATH names {named}, which cannot be read or is empty: {TOKEN_HELP}")
    default = Path.home() / ".ray" / "auth_token"
    with contextlib.suppress(OSError):
        if default.read_text().strip():
            return "~/.ray/auth_token"
    return None


def _local_env() -> dict[str, str]:
    env = {
        # Ray listens on the machine's network address even when given 127.0.0.1; this switch (on
        # by default on macOS and Windows, where Ray runs on one machine) keeps it on 127.0.0.1
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # Ray runs workers at nice 15 by default; a local run gets the priority a one-process run has
        "RAY_worker_niceness": os.environ.get("RAY_worker_niceness", "0"),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_AUTH_TOKEN_PATH": "",
    }
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        env.update(RAY_AUTH_MODE="disabled", RAY_AUTH_TOKEN="")
    return env


@contextlib.contextmanager
def _ray_env(env: dict[str, str], *, loopback: bool = False) -> Iterator[None]:
    """Set ``env`` (an empty value unsets) for Ray and the processes it starts; restore it afterwards."""
    from ray._private import ray_constants

    old = {k: os.environ.get(k) for k in env}
    cluster = getattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    try:
        for k, v in env.items():
            _set(k, v or None)
        if loopback:  # Ray read RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER into this when imported
            ray_constants.ENABLE_RAY_CLUSTER = False
        _reload_auth()
        yield
    finally:
        if loopback:
            ray_constants.ENABLE_RAY_CLUSTER = cluster
        for k, v in old.items():
            _set(k, v)
        _reload_auth()


@contextlib.contextmanager
def _restored_environ() -> Iterator[None]:
    """Put back every environment variable changed in the block (ray.init sets some of its own)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for k in set(os.environ) | set(saved):
            if os.environ.get(k) != saved.get(k):
                _set(k, saved.get(k))


def _set(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def _reload_auth() -> None:
    """Make Ray read ``RAY_AUTH_MODE`` and the token again (as Ray's own token set-up does)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray without token authentication (before 2.52)
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _cluster_auth_mode(address: str) -> str | None:
    """``"disabled"`` or ``"token"``: what the cluster at ``address`` wants, asked quietly (a driver
    whose mode differs cannot join it: without a token it is refused, with one its actors die
    when the cluster's workers call back without one). None when the address is for ray.init to judge.

    Raises:
        BackendUnavailable: the cluster wants a token and there is none, or refuses this one, or
            does not answer.
    """
    try:
        from ray._private.services import canonicalize_bootstrap_address
        from ray.exceptions import AuthenticationError
    except ImportError:  # a Ray without token authentication
        return None
    try:
        gcs = canonicalize_bootstrap_address(address)
    except Exception:  # noqa: BLE001 - ray.init says what is wrong with the address
        return None
    if gcs is None:
        return None
    try:
        _ask(gcs, address, mode="disabled")
        return "disabled"
    except AuthenticationError:
        pass
    source = token_source()
    if source is None:
        raise BackendUnavailable(f"the Ray cluster at {address} uses token authentication and no token was "
                                 f"found: {TOKEN_HELP}")
    try:
        _ask(gcs, address, mode="token")
    except AuthenticationError:
        raise BackendUnavailable(f"the Ray cluster at {address} refused the token from {source}: {TOKEN_HELP}") \
            from None
    return "token"


def _ask(gcs: str, address: str, *, mode: str) -> None:
    """Connect to the GCS at ``gcs`` in auth ``mode`` (Ray's own join retries a refused one for
    about 20 s, printing a gRPC warning each second, then fails without saying why)."""
    from ray._raylet import GcsClient
    from ray.exceptions import RpcError

    with _ray_env({"RAY_AUTH_MODE": mode}), _quiet_stderr():
        try:
            GcsClient(address=gcs)
        except RpcError as e:
            raise BackendUnavailable(f"cannot reach the Ray cluster at {address} ({gcs}): {str(e).rstrip('.')}; "
                                     f"{_TIMEOUT_HELP}") from None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 (where Ray's C++ core logs) to /dev/null for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
