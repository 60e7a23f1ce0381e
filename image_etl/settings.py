"""Where image-etl's resources are: read once, from the environment, then the running local stack,
then the defaults of the local stack. The CLI, the notebooks and Dagster all use this.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from image_etl.dataset.rules import FIRST_DAY
from image_etl.resource_shapes import (
    LOCAL,
    LOCAL_CREDENTIAL_VARIABLES,
    LOCAL_CREDENTIALS,
    StackNames,
    token_issuer,
)

DEFAULT_AWS_PORT = 4566
DEFAULT_SITE_PORT = 8000
DEFAULT_DAGSTER_PORT = 3000
DEFAULT_REGION = "us-east-1"
#: moto's account id (any access key that is not an AWS key id maps to it).
LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_HOST = "127.0.0.1"
# The data dir's layout: the running stack's ports, the emulator's state file (object metadata and
# records) and the object bodies' folder.
STATE_FILE = "stack.json"
STATE_DB = "state.sqlite3"
OBJECTS_DIR = "objects"
#: The local stack's first upload day, written once in its data dir (see :func:`local_first_day`).
FIRST_DAY_FILE = "first-day"

# Environment variables that override a setting; IMAGE_ETL_* win over the stack file.
_ENV = {
    "aws_endpoint_url": "IMAGE_ETL_AWS_ENDPOINT_URL",
    "region": "IMAGE_ETL_REGION",
    "upload_bucket": "IMAGE_ETL_UPLOAD_BUCKET",
    "upload_prefix": "IMAGE_ETL_UPLOAD_PREFIX",
    "variants_bucket": "IMAGE_ETL_VARIANTS_BUCKET",
    "variants_prefix": "IMAGE_ETL_VARIANTS_PREFIX",
    "datasets_bucket": "IMAGE_ETL_DATASETS_BUCKET",
    "datasets_prefix": "IMAGE_ETL_DATASETS_PREFIX",
    "table_name": "IMAGE_ETL_TABLE_NAME",
    "queue_url": "IMAGE_ETL_QUEUE_URL",
    "dlq_url": "IMAGE_ETL_DLQ_URL",
    "site_url": "IMAGE_ETL_SITE_URL",
    "api_url": "IMAGE_ETL_API_URL",
    "dagster_url": "IMAGE_ETL_DAGSTER_URL",
    "user_pool_id": "IMAGE_ETL_USER_POOL_ID",
    "user_pool_client_id": "IMAGE_ETL_USER_POOL_CLIENT_ID",
    "glue_database": "IMAGE_ETL_GLUE_DATABASE",
    "athena_workgroup": "IMAGE_ETL_ATHENA_WORKGROUP",
    "dataset_license": "IMAGE_ETL_DATASET_LICENSE",
    "first_day": "IMAGE_ETL_FIRST_DAY",
}
#: What the running local stack writes into its stack file about itself (user pool, first day).
_STACK_FILE_FIELDS = ("user_pool_id", "user_pool_client_id", "first_day")


def settings_variables(settings: Settings) -> dict[str, str]:
    """Return the IMAGE_ETL_* variables that reproduce ``settings`` in another process."""
    values = settings.to_json()
    return {var: str(values[field]) for field, var in _ENV.items() if values.get(field) is not None}


def project_root(start: Path | None = None) -> Path:
    """Return the nearest folder at or above ``start`` (default cwd) with image-etl's pyproject, else cwd."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and 'name = "image-etl"' in pyproject.read_text(errors="replace"):
            return folder
    return here


def default_data_dir() -> Path:
    """Return the data dir: $IMAGE_ETL_DATA_DIR, else ``.image-etl/`` in the project."""
    env = os.environ.get("IMAGE_ETL_DATA_DIR")
    return Path(env).resolve() if env else project_root() / ".image-etl"


@dataclass(frozen=True)
class Settings:
    """Endpoints and resource names of one image-etl deployment (local or AWS)."""

    aws_endpoint_url: str | None
    region: str
    upload_bucket: str
    upload_prefix: str
    variants_bucket: str
    variants_prefix: str
    table_name: str
    queue_url: str
    dlq_url: str
    data_dir: str
    site_url: str | None = None
    api_url: str | None = None
    dagster_url: str | None = None
    datasets_bucket: str = LOCAL.datasets_bucket
    datasets_prefix: str = LOCAL.datasets_prefix
    processed_index: str = LOCAL.table.processed_index
    label_index: str = LOCAL.table.label_index
    index_shards: int = LOCAL.table.index_shards
    #: The Cognito user pool and the page's app client (None until a local stack has created them).
    user_pool_id: str | None = None
    user_pool_client_id: str | None = None
    #: The Glue database of the manifest table (and the Athena workgroup, deployed stacks only).
    glue_database: str = LOCAL.catalog.database
    athena_workgroup: str | None = None
    #: The license the dataset cards state: a Hugging Face license id (``cc-by-4.0``, ``other``, ...).
    #: "unknown" until someone who knows where the uploads come from says otherwise.
    dataset_license: str = "unknown"
    #: The first upload day (``YYYY-MM-DD``): where Dagster's daily partitions start; earlier uploads
    #: are filed under it. The local stack's first start, a deployed stack's creation, or FIRST_DAY.
    first_day: str = FIRST_DAY
    running: bool = False

    @property
    def is_local(self) -> bool:
        return bool(self.aws_endpoint_url) and "127.0.0.1" in str(self.aws_endpoint_url)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def token_issuer(self) -> str | None:
        """Return the ``iss`` of the pool's tokens: Cognito's host, also for the emulator's tokens."""
        return token_issuer(self.region, self.user_pool_id) if self.user_pool_id else None

    @property
    def jwks_url(self) -> str | None:
        """Return where the pool's signing keys are: the issuer's well-known path in AWS, the same
        path under the emulator locally (moto's tokens name AWS's host, but the keys are here)."""
        if not self.user_pool_id:
            return None
        if self.aws_endpoint_url:
            return f"{self.aws_endpoint_url.rstrip('/')}/{self.user_pool_id}/.well-known/jwks.json"
        return f"{self.token_issuer}/.well-known/jwks.json"

    def lambda_environment(self) -> dict[str, str]:
        """Return what a Lambda handler running locally needs besides its own variables: the endpoint,
        the region and throwaway credentials (the emulator accepts any)."""
        return {
            "AWS_ENDPOINT_URL": self.aws_endpoint_url or "",
            **LOCAL_CREDENTIAL_VARIABLES,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self, service: str) -> Any:
        """Return a boto3 client for ``service`` pointed at this deployment (shared: clients are
        thread-safe, and building one costs ~0.1 s of botocore's model loading)."""
        return _client(service, self.aws_endpoint_url, self.region, self.is_local, os.getpid())


@cache
def _client(service: str, endpoint_url: str | None, region: str, is_local: bool, pid: int) -> Any:
    """Return a shared client; ``pid`` keeps a forked process from reusing its parent's connections."""
    import boto3

    if is_local:
        # moto accepts any credentials; never send a user's real keys to the emulator.
        session = boto3.session.Session(**LOCAL_CREDENTIALS, region_name=region)
    else:
        session = boto3.session.Session(region_name=region)
    return session.client(service, endpoint_url=endpoint_url, region_name=region)


def local_settings(
    data_dir: Path,
    *,
    aws_port: int = DEFAULT_AWS_PORT,
    site_port: int = DEFAULT_SITE_PORT,
    dagster_port: int | None = DEFAULT_DAGSTER_PORT,
    region: str = DEFAULT_REGION,
    names: StackNames = LOCAL,
) -> Settings:
    """Return the settings of a local stack on ``aws_port`` (site on ``site_port``) with the local names."""
    endpoint = f"http://{LOCAL_HOST}:{aws_port}"
    site = f"http://{LOCAL_HOST}:{site_port}"
    return Settings(
        aws_endpoint_url=endpoint,
        region=region,
        upload_bucket=names.upload_bucket,
        upload_prefix=names.upload_prefix,
        variants_bucket=names.variants_bucket,
        variants_prefix=names.variants_prefix,
        table_name=names.table.name,
        queue_url=f"{endpoint}/{LOCAL_ACCOUNT_ID}/{names.queue.name}",
        dlq_url=f"{endpoint}/{LOCAL_ACCOUNT_ID}/{names.queue.dlq_name}",
        data_dir=str(data_dir),
        site_url=site,
        api_url=f"{site}/api",
        dagster_url=f"http://{LOCAL_HOST}:{dagster_port}" if dagster_port else None,
        datasets_bucket=names.datasets_bucket,
        datasets_prefix=names.datasets_prefix,
        processed_index=names.table.processed_index,
        label_index=names.table.label_index,
        index_shards=names.table.index_shards,
    )


def read_stack_file(data_dir: Path) -> dict[str, Any] | None:
    """Return what the local stack running on ``data_dir`` wrote about itself, if it is alive."""
    path = data_dir / STATE_FILE
    try:
        state = json.loads(path.read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return state


def local_first_day(data_dir: Path, *, has_records: bool, today: date | None = None) -> str:
    """Return the local stack's first upload day, choosing it at the first start of ``data_dir``.

    Uploads are stamped with the time they arrive, so none predates the stack: a new data dir starts
    on ``today`` (UTC). A data dir that already holds records from before this file existed keeps
    :data:`FIRST_DAY`, so none of them moves to another day.

    :param has_records: whether the stack restored records at this start.
    """
    path = data_dir / FIRST_DAY_FILE
    try:
        return _checked_day(path.read_text().strip(), str(path))
    except FileNotFoundError:
        pass
    day = FIRST_DAY if has_records else (today or datetime.now(UTC).date()).isoformat()
    path.write_text(day + "\n")
    return day


def _checked_day(value: str, source: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(
            f"{source}: the first upload day must be a day such as 2026-11-26, got {value!r}"
        ) from None


def deployed_stack_fields(prefix: str, *, region: str | None = None) -> dict[str, str]:
    """Return the Settings fields of the deployment ``prefix`` (``cdk deploy -c stackPrefix=...``),
    read from its CloudFormation stack outputs.

    :raises ValueError: when one of the deployment's stacks does not exist (a wrong prefix or region).
    """
    import boto3
    from botocore.exceptions import ClientError

    from image_etl.stack_outputs import settings_fields_from_outputs, stack_ids

    cloudformation = boto3.session.Session(region_name=region).client("cloudformation")
    outputs: dict[str, str] = {}
    created: list[datetime] = []
    for name in stack_ids(prefix).all():
        try:
            stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ValidationError":  # CloudFormation's "does not exist"
                raise
            raise ValueError(
                f"IMAGE_ETL_STACK={prefix}: there is no stack {name} in {cloudformation.meta.region_name} "
                "(check the prefix, IMAGE_ETL_REGION / AWS_REGION and the account of your credentials)"
            ) from None
        for stack in stacks:
            outputs.update({o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])})
            created += [stack["CreationTime"]] if "CreationTime" in stack else []
    fields = settings_fields_from_outputs(outputs)
    if created:  # no upload predates the buckets: partitions start the day the first stack was made
        fields["first_day"] = min(created).astimezone(UTC).date().isoformat()
    return fields


def load_settings(data_dir: Path | str | None = None) -> Settings:
    """Return the settings: IMAGE_ETL_* environment variables, else the running local stack, else defaults.

    ``IMAGE_ETL_STACK=<prefix>`` alone points everything at a deployed stack: its names come from the
    stacks' CloudFormation outputs and requests go to AWS's own endpoints.

    :param data_dir: the local stack's data dir (default :func:`default_data_dir`).
    """
    folder = Path(data_dir).resolve() if data_dir else default_data_dir()
    if os.environ.get("IMAGE_ETL_STACK"):
        region = os.environ.get("IMAGE_ETL_REGION") or os.environ.get("AWS_REGION")
        fields: dict[str, Any] = deployed_stack_fields(os.environ["IMAGE_ETL_STACK"], region=region)
        base = replace(local_settings(folder), aws_endpoint_url=None, running=True)
        fields.update(
            {f: os.environ[v] for f, v in _ENV.items() if os.environ.get(v) and f != "aws_endpoint_url"}
        )
        deployed = replace(base, **fields)
        return replace(deployed, first_day=_checked_day(deployed.first_day, "IMAGE_ETL_FIRST_DAY"))
    state = read_stack_file(folder)
    ports = {
        "aws_port": os.environ.get("IMAGE_ETL_AWS_PORT", DEFAULT_AWS_PORT),
        "site_port": os.environ.get("IMAGE_ETL_SITE_PORT", DEFAULT_SITE_PORT),
        "dagster_port": os.environ.get("IMAGE_ETL_DAGSTER_PORT", DEFAULT_DAGSTER_PORT),
        **(state or {}),
    }
    dagster_port = int(ports["dagster_port"]) if ports["dagster_port"] else None
    local = local_settings(
        folder, aws_port=int(ports["aws_port"]), site_port=int(ports["site_port"]), dagster_port=dagster_port
    )
    recorded: dict[str, Any] = {name: (state or {}).get(name) for name in _STACK_FILE_FIELDS}
    settings = replace(local, running=state is not None, **recorded)
    settings = replace(settings, first_day=(state or {}).get("first_day") or FIRST_DAY)
    overrides: dict[str, Any] = {field: os.environ[var] for field, var in _ENV.items() if os.environ.get(var)}
    if str(overrides.get("aws_endpoint_url", "")).lower() == "aws":
        overrides["aws_endpoint_url"] = None  # AWS's own endpoints, credentials from the usual chain
    settings = replace(settings, **overrides) if overrides else settings
    return replace(settings, first_day=_checked_day(settings.first_day, "IMAGE_ETL_FIRST_DAY"))
