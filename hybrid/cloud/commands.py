"""The cloud path's commands (credits, status, login, logout, serve) and the compress wiring.

``cli.py`` only registers these and calls :func:`run_cloud_compress`; keeping them here keeps the
shared CLI module small.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import click
from tqdm import tqdm

from ..errors import Interrupted
from ..models import Event, MediaInfo, Plan, Request, Result, StageStarted, Transfer, Waiting
from ..units import parse_duration
from .client import NemoClient
from .config import Store, env_token
from .errors import CloudError
from .executor import CloudSettings, compress_cloud, timeline_summary

F = TypeVar("F", bound=Callable[..., Any])


def cloud_options(func: F) -> F:
    """``--cloud`` / ``--local`` / ``--cloud-url`` for ``hybrid compress``."""
    options = [
        click.option(
            "--cloud", "force_cloud", is_flag=True, help="Render on the cloud service (or a hybrid node)."
        ),
        click.option("--local", "force_local", is_flag=True, help="Encode on this machine, whatever it has."),
        click.option(
            "--cloud-url",
            metavar="URL",
            default=None,
            help="Render service base URL (beats the config and NEMO_API_URL).",
        ),
        click.option(
            "--max-wait",
            "max_wait",
            metavar="DURATION",
            default=None,
            help="How long a local encode may take before the cloud is preferred, e.g. 5min, 90s "
            "(default 3min, or max_wait_s in the config).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@dataclass(frozen=True)
class PathChoice:
    """What ``--cloud`` / ``--local`` / ``--cloud-url`` / ``--max-wait`` said. ``cloud`` and ``local``
    are forced paths; with neither, the router decides."""

    cloud: bool
    cloud_url: str | None
    local: bool = False
    max_wait_s: float | None = None

    @property
    def forced(self) -> Literal["local", "cloud"] | None:
        return "cloud" if self.cloud else "local" if self.local else None


def pop_cloud_params(params: dict[str, Any]) -> PathChoice:
    """Take the cloud options out of a command's ``**params`` (the rest are Request settings)."""
    force_cloud = bool(params.pop("force_cloud", False))
    force_local = bool(params.pop("force_local", False))
    cloud_url = params.pop("cloud_url", None)
    max_wait = params.pop("max_wait", None)
    if force_cloud and force_local:
        raise click.UsageError("--cloud and --local contradict each other: pick one")
    max_wait_s = None
    if max_wait is not None:
        try:
            max_wait_s = parse_duration(str(max_wait))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--max-wait") from None
    return PathChoice(cloud=force_cloud, cloud_url=cloud_url, local=force_local, max_wait_s=max_wait_s)


class CloudDrawer:
    """Draws the cloud events (bytes bars, "still working") and hands the rest to the local drawer."""

    def __init__(self, inner: Callable[[Event], None], *, bars: bool, quiet: bool) -> None:
        self.inner = inner
        self.bars = bars
        self.quiet = quiet
        self.bar: tqdm | None = None
        self.stage = ""

    def __call__(self, event: Event) -> None:
        if isinstance(event, Transfer):
            if not self.bars:
                return
            if self.bar is None or self.stage != event.stage:
                self.close()
                self.stage = event.stage
                self.bar = tqdm(
                    total=event.total_bytes,
                    desc=f"{event.stage:<14}",
                    unit="B",
                    unit_scale=True,
                    file=sys.stderr,
                    leave=False,
                    dynamic_ncols=True,
                )
            if event.total_bytes and self.bar.total != event.total_bytes:
                self.bar.total = event.total_bytes
            self.bar.n = event.done_bytes
            self.bar.refresh()
        elif isinstance(event, Waiting):
            if not self.bars:
                return
            if self.bar is None or self.stage != event.stage:
                self.close()
                self.stage = event.stage
                self.bar = tqdm(
                    total=100,
                    desc=f"{event.stage:<14}",
                    unit="%",
                    file=sys.stderr,
                    leave=False,
                    dynamic_ncols=True,
                    # The agent reports no percentage, only that it is alive: no bar for it.
                    bar_format="{desc} {percentage:3.0f}%|{bar}| still working [{elapsed}]"
                    if event.progress is not None
                    else "{desc} still working [{elapsed}]",
                )
            if event.progress is not None:
                self.bar.n = min(100.0, event.progress)
            self.bar.refresh()
        else:
            if isinstance(event, StageStarted):
                self.close()
            self.inner(event)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.stage = ""


def run_cloud_compress(
    input_path: Path,
    request: Request,
    output: Path | None,
    *,
    overwrite: bool,
    drawer: Callable[[Event], None],
    bars: bool,
    quiet: bool,
    cloud_url: str | None,
    info: MediaInfo | None = None,
    plan: Plan | None = None,
) -> Result:
    store = Store()
    settings = CloudSettings.from_store(store, cloud_url=cloud_url)
    cloud_drawer = CloudDrawer(drawer, bars=bars, quiet=quiet)
    try:
        return compress_cloud(
            input_path,
            request,
            output,
            overwrite=overwrite,
            on_event=cloud_drawer,
            settings=settings,
            store=store,
            info=info,
            plan=plan,
        )
    finally:
        cloud_drawer.close()


def _client(cloud_url: str | None) -> NemoClient:
    store = Store()
    settings = CloudSettings.from_store(store, cloud_url=cloud_url)
    return NemoClient(settings.base_url, store, options=settings.options)


url_option = click.option("--cloud-url", metavar="URL", default=None, help="Render service base URL.")


@click.command()
@url_option
def credits(cloud_url: str | None) -> None:
    """Show the render service's credits: available, frozen, total."""
    with _client(cloud_url) as client:
        balance = client.credits()
    click.echo(f"available {balance.available:g}, frozen {balance.frozen:g}, total {balance.total:g}")


@click.command()
@url_option
@click.option("--session", "session_id", metavar="ID", help="A session id (default: the last one used).")
def status(cloud_url: str | None, session_id: str | None) -> None:
    """Show a render session's state, with a timeline summary."""
    store = Store()
    config = store.config()
    session_id = session_id or config.get("last_session")
    if not session_id:
        raise CloudError("no session yet: run `hybrid compress --cloud ...` first, or pass --session ID")
    if cloud_url is None and isinstance(config.get("last_session_url"), str) and "cloud_url" not in config:
        cloud_url = config["last_session_url"]
    with _client(cloud_url) as client:
        state = client.state(str(session_id))
    inner = state.get("state") if isinstance(state.get("state"), dict) else {}
    assert isinstance(inner, dict)
    click.echo(f"session {state.get('session_id', session_id)} on {client.base_url}")
    for video in inner.get("video_infos") or []:
        if isinstance(video, dict):
            click.echo(
                f"video    {video.get('filename')}: {video.get('width')}x{video.get('height')}, "
                f"{float(video.get('duration') or 0):.1f} s"
            )
    click.echo(timeline_summary(inner.get("draft")))


@click.command()
@click.option("--token", prompt=True, hide_input=True, help="A NemoVideo token (nmv_usr_...).")
def login(token: str) -> None:
    """Store a token for the render service (file mode 0600; never printed)."""
    token = token.strip()
    if not token:
        raise click.BadParameter("the token is empty", param_hint="--token")
    store = Store()
    store.save_credentials(replace(store.credentials(), token=token, kind="user", expires_at=None))
    where = store.credentials_path
    note = " (NEMO_TOKEN is set and still wins)" if env_token() else ""
    click.echo(f"token stored in {where}{note}")


@click.command()
def logout() -> None:
    """Forget the stored token (the next cloud job gets an anonymous one)."""
    store = Store()
    store.forget_token()
    click.echo("token forgotten")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the node keeps its database and files (default: <config dir>/node).",
)
@click.option(
    "--credits",
    "initial_credits",
    type=float,
    default=100.0,
    show_default=True,
    help="Credits for each new anonymous user.",
)
@click.option("--max-upload", "max_upload", default="500MB", show_default=True, help="Upload size limit.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="NAME[=N]",
    help="Inject a fault for testing, e.g. rate_limit=1, drop_sse, status_variant=B.",
)
def serve(
    host: str,
    port: int,
    data_dir: Path | None,
    initial_credits: float,
    max_upload: str,
    faults: tuple[str, ...],
) -> None:
    """Run a NemoVideo-compatible render node that compresses with this machine's ffmpeg."""
    from ..units import parse_size
    from .server import NodeConfig, faults_from
    from .server import serve as run

    try:
        fault_set = faults_from(list(faults))
        limit = parse_size(max_upload)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    folder = data_dir or Store().folder / "node"
    click.echo(
        f"hybrid render node on http://{host}:{port} (data in {folder}); point clients at it with "
        f"--cloud-url http://{host}:{port}",
        err=True,
    )
    config = NodeConfig(
        data_dir=folder, initial_credits=initial_credits, max_upload_bytes=limit, faults=fault_set
    )
    try:
        run(config, host, port)
    except Interrupted:
        # uvicorn has already shut down cleanly; SIGTERM is how a node is meant to be stopped.
        click.echo("hybrid render node stopped", err=True)


COMMANDS = (credits, status, login, logout, serve)
