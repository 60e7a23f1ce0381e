"""`image-etl`: start the local stack, show its settings, upload images, load the demo set."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from image_etl.settings import (
    DEFAULT_AWS_PORT,
    DEFAULT_DAGSTER_PORT,
    DEFAULT_SITE_PORT,
    Settings,
    default_data_dir,
    load_settings,
)

app = typer.Typer(
    help="image-etl: raw image uploads -> resized variants + records -> ML datasets.", no_args_is_help=True
)
console = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Local stack data dir (default: .image-etl/ in the project, or $IMAGE_ETL_DATA_DIR).",
    ),
]


@app.command()
def up(
    data_dir: DataDir = None,
    aws_port: Annotated[
        int, typer.Option("--aws-port", help="Port of the AWS emulation on 127.0.0.1.")
    ] = DEFAULT_AWS_PORT,
    site_port: Annotated[
        int, typer.Option("--site-port", help="Port of the upload site on 127.0.0.1.")
    ] = DEFAULT_SITE_PORT,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Event worker processes.")] = 2,
    dagster_port: Annotated[
        int, typer.Option("--dagster-port", help="Port of the Dagster UI (`dagster dev`) on 127.0.0.1.")
    ] = DEFAULT_DAGSTER_PORT,
    no_dagster: Annotated[bool, typer.Option("--no-dagster", help="Leave Dagster out.")] = False,
) -> None:
    """Start the local stack (AWS emulation, event workers, upload site, Dagster) in the foreground.

    Ctrl-C or SIGTERM stops every process it started.
    """
    from image_etl.local.stack import LocalStack, StackError

    folder = (data_dir or default_data_dir()).resolve()
    try:
        stack = LocalStack(
            folder,
            aws_port=aws_port,
            site_port=site_port,
            workers=workers,
            dagster_port=None if no_dagster else dagster_port,
        )
        code = stack.run()
    except StackError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    raise typer.Exit(code)


@app.command()
def info(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show the endpoints and resource names that the CLI, notebooks and Dagster use."""
    from image_etl.local.usage import data_dir_usage

    settings = _load_settings_or_exit(data_dir)
    usage = data_dir_usage(Path(settings.data_dir)) if settings.is_local else None
    if as_json:
        print(json.dumps({**settings.to_json(), "data_dir_usage": usage and usage.to_json()}, indent=2))
        return
    state = "running" if settings.running else "not running (these are the settings it would start with)"
    console.print(f"local stack on {settings.data_dir}: {state}")
    if usage:
        console.print(f"  {'holds':<18} {usage.summary()}")
    for name, value in settings.to_json().items():
        console.print(f"  {name:<18} {value}")


@app.command()
def upload(
    paths: Annotated[
        list[Path], typer.Argument(help="Image files or folders (a folder's name is the label).")
    ],
    label: Annotated[
        str | None, typer.Option("--label", help="Label for every file, overriding folder names.")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64)] = 8,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for each image's record and report.")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for records.")] = 120.0,
    data_dir: DataDir = None,
) -> None:
    """Upload images to the upload bucket (local stack, or AWS when IMAGE_ETL_* point there)."""
    settings = _settings_or_exit(data_dir)
    _upload(settings, paths, label=label, concurrency=concurrency, wait=wait, timeout=timeout)


@app.command()
def demo(
    per_class: Annotated[int, typer.Option("--per-class", min=1, max=200)] = 8,
    rounds: Annotated[
        int,
        typer.Option(
            "--rounds",
            min=1,
            max=10,
            help="Upload in this many rounds, each followed by its manifest version (2: two versions "
            "for compare_versions.ipynb; 1: one upload, the pipeline builds when it runs).",
        ),
    ] = 2,
    wait: Annotated[bool, typer.Option("--wait/--no-wait")] = True,
    version_timeout: Annotated[
        float, typer.Option("--version-timeout", help="Seconds to wait for each round's version.")
    ] = 300.0,
    data_dir: DataDir = None,
) -> None:
    """Upload a generated demo set: 3 classes, duplicates, a label conflict and broken files.

    With more than one round, each round's manifest version is built before the next upload:
    by the stack's Dagster sensor when it runs one (waited for), else here, in this process.
    """
    from image_etl.demo import build_version_here, split_into_rounds, wait_for_version, write_demo_dataset

    if rounds > 1 and not wait:
        console.print("[red]error:[/red] --rounds above 1 needs --wait: a round's version needs its records")
        raise typer.Exit(2)
    settings = _settings_or_exit(data_dir)
    # Who builds versions: the local stack's Dagster or a deployed pipeline; a local stack started
    # with --no-dagster has nobody, so the demo builds them itself.
    pipeline_builds = not settings.is_local or settings.dagster_url is not None
    with tempfile.TemporaryDirectory(prefix="image-etl-demo-") as tmp:
        root = Path(tmp) / "demo"
        files = write_demo_dataset(root, per_class=per_class)
        console.print(
            f"generated {len(files)} demo files (3 classes, 2 duplicates, 1 label conflict, 3 broken)"
            + (f", uploaded in {rounds} rounds" if rounds > 1 else "")
        )
        for number, folder in enumerate(split_into_rounds(root, files, rounds), start=1):
            records = _upload(settings, [folder], label=None, concurrency=8, wait=wait, timeout=180.0)
            if rounds == 1:
                return
            if pipeline_builds:
                console.print(f"round {number}: waiting for the pipeline to build its manifest version")
            else:
                console.print(f"round {number}: building its manifest version here (no Dagster in the stack)")
                try:
                    build_version_here(settings)
                except RuntimeError as error:
                    console.print(f"[red]error:[/red] {error}")
                    raise typer.Exit(1) from None
            ids = [str(record["image_id"]) for record in records.values()]
            version = wait_for_version(settings, ids, timeout_s=version_timeout if pipeline_builds else 0)
            if version is None:
                console.print(
                    f"[red]error:[/red] no manifest version with round {number}'s images after "
                    f"{version_timeout:.0f} s; is the Dagster sensor running ({settings.dagster_url})?"
                )
                raise typer.Exit(1)
            console.print(f"round {number}: manifest version {version}")


@app.command()
def manifest(
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    version: Annotated[
        str | None,
        typer.Option(
            "--version", help="A version id (a tag) or snapshot id (default: the published version)."
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Download a version of the dataset manifest table (default: the published one) as parquet."""
    from image_etl.manifest import ManifestNotFound, download_manifest

    settings = _settings_or_exit(data_dir)
    try:
        resolved = download_manifest(out, version, settings)
    except ManifestNotFound as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    console.print(f"manifest {resolved} -> {out}")


users_app = typer.Typer(
    help="Who may use the upload page and API: the users of the user pool (local stack or IMAGE_ETL_STACK).",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name (sign-in is case-insensitive).")],
    group: Annotated[
        list[str],
        typer.Option("--group", help="uploaders (upload and read) or viewers (read); repeat for both."),
    ],
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file", help="Read the temporary password from this file instead of generating one."
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Add a user; prints their temporary password once (they choose their own at first sign-in)."""
    from image_etl.users import UserError, add_user, read_password_file

    settings = _settings_or_exit(data_dir)
    try:
        given = read_password_file(password_file) if password_file else None
        password = add_user(settings, name, groups=group, password=given)
    except (UserError, OSError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(f"added {name} to {', '.join(group)} in user pool {settings.user_pool_id}")
    if given is None:
        console.print("temporary password (shown once; it must be changed at first sign-in):")
        print(password)


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
    data_dir: DataDir = None,
) -> None:
    """List the users with their groups and status."""
    from image_etl.users import UserError, list_users

    settings = _settings_or_exit(data_dir)
    try:
        users = list_users(settings)
    except UserError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps([{**user.__dict__, "created": str(user.created)} for user in users], indent=2))
        return
    for user in users:
        state = user.status + ("" if user.enabled else ", disabled")
        print(f"{user.username:<24} {','.join(user.groups) or '(no group: no access)':<20} {state}")
    console.print(f"{len(users)} users in user pool {settings.user_pool_id}")


@users_app.command("remove")
def users_remove(
    name: Annotated[str, typer.Argument(help="User name.")],
    data_dir: DataDir = None,
) -> None:
    """Remove a user: they cannot sign in or refresh a session any more."""
    from image_etl.users import UserError, remove_user

    settings = _settings_or_exit(data_dir)
    try:
        remove_user(settings, name)
    except UserError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(f"removed {name} from user pool {settings.user_pool_id}")


def _load_settings_or_exit(data_dir: Path | None) -> Settings:
    """Return the settings, or exit 2 naming the setting that is wrong (a bad day, a missing stack)."""
    try:
        return load_settings(data_dir)
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None


def _settings_or_exit(data_dir: Path | None) -> Settings:
    settings = _load_settings_or_exit(data_dir)
    if settings.is_local and not settings.running:
        console.print(
            f"[red]error:[/red] no local stack is running on {settings.data_dir}; start it with `make up` "
            "(or `image-etl up`), or point IMAGE_ETL_* settings at a deployed stack"
        )
        raise typer.Exit(2)
    return settings


def progress_bar() -> Progress:
    """The CLI's progress bar (on stderr); the benchmarks show theirs the same way."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


# Per-file lines after this many are summarised: 2,000 "still pending" lines help nobody.
LISTED_PER_KIND = 20


def _list_some(lines: list[str]) -> None:
    for line in lines[:LISTED_PER_KIND]:
        console.print(line)
    if len(lines) > LISTED_PER_KIND:
        console.print(f"  ... and {len(lines) - LISTED_PER_KIND} more")


def _upload(
    settings: Settings, paths: list[Path], *, label: str | None, concurrency: int, wait: bool, timeout: float
) -> dict[str, dict[str, object]]:
    """Upload ``paths`` with progress; return key -> record (empty without ``wait``), or exit on errors."""
    from image_etl.upload import plan_uploads, upload_all, wait_for_records

    try:
        plan = plan_uploads(paths, upload_prefix=settings.upload_prefix, label=label)
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    _list_some([f"[yellow]skipped[/yellow] {path}: {reason}" for path, reason in plan.skipped])
    if not plan.uploads:
        console.print("[red]error:[/red] nothing to upload")
        raise typer.Exit(2)
    with progress_bar() as progress:
        task = progress.add_task(f"uploading to s3://{settings.upload_bucket}", total=len(plan.uploads))
        etags, errors = upload_all(
            settings, plan.uploads, concurrency=concurrency, on_done=lambda _: progress.advance(task)
        )
    _list_some([f"[red]upload failed[/red] {item.path}: {error}" for item, error in errors])
    console.print(f"uploaded {len(etags)} of {len(plan.uploads)} files")
    if errors:
        raise typer.Exit(1)
    if not wait:
        return {}
    with progress_bar() as progress:
        task = progress.add_task("processing", total=len(etags))
        records = wait_for_records(
            settings, etags, timeout_s=timeout, on_progress=lambda n: progress.update(task, completed=n)
        )
    failed = {key: r for key, r in records.items() if r.get("status") != "processed"}
    missing = [key for key in etags if key not in records]
    console.print(
        f"processed {len(records) - len(failed)}, failed {len(failed)}, still pending {len(missing)}"
    )
    _list_some([f"  [red]failed[/red] {key}: {r.get('error')}" for key, r in sorted(failed.items())])
    _list_some([f"  [yellow]no record yet[/yellow] {key}" for key in missing])
    if missing:
        raise typer.Exit(1)
    return records


if __name__ == "__main__":
    app()
