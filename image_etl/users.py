"""Who may use a deployment: add, list and remove the users of its Cognito user pool.

The same calls (Cognito's admin API, with the caller's AWS credentials) work against the local
stack's pool in the emulator and against a deployed pool (``IMAGE_ETL_STACK=...``). `image-etl users`
is the command line over these functions; the local stack uses them for its `demo` user.
"""

from __future__ import annotations

import os
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from image_etl.resource_shapes import LOCAL, IdentityShape
from image_etl.settings import Settings

#: Where the local stack keeps the demo user's password (mode 0600), in its data dir.
DEMO_PASSWORD_FILE = "demo-password.txt"
_SYMBOLS = "!#%*+-=?@^_"


class UserError(RuntimeError):
    """A user-management request that cannot be done; the message says why."""


@dataclass(frozen=True)
class User:
    username: str
    groups: tuple[str, ...]
    status: str
    enabled: bool
    created: datetime | None


def generate_password(identity: IdentityShape = LOCAL.identity, *, length: int = 20) -> str:
    """Return a random password that meets the pool's policy (each character class at least once)."""
    length = max(length, identity.password_min_length)
    classes = (string.ascii_lowercase, string.ascii_uppercase, string.digits, _SYMBOLS)
    alphabet = "".join(classes)
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(any(c in cls for c in password) for cls in classes):
            return password


def _pool(settings: Settings) -> tuple[Any, str]:
    if not settings.user_pool_id:
        where = "the running local stack" if settings.is_local else "the deployment's outputs"
        raise UserError(
            f"no user pool is known: {where} gave no user pool id "
            "(start the stack with `make up`, or set IMAGE_ETL_STACK / IMAGE_ETL_USER_POOL_ID)"
        )
    return settings.client("cognito-idp"), settings.user_pool_id


def _check_groups(groups: list[str], identity: IdentityShape) -> None:
    if not groups:
        raise UserError(f"give at least one --group ({' or '.join(identity.group_names)})")
    unknown = sorted(set(groups) - set(identity.group_names))
    if unknown:
        raise UserError(
            f"unknown group {', '.join(unknown)}: the groups are {', '.join(identity.group_names)}"
        )


def add_user(
    settings: Settings,
    username: str,
    *,
    groups: list[str],
    password: str | None = None,
    permanent: bool = False,
    identity: IdentityShape = LOCAL.identity,
) -> str:
    """Create ``username`` in ``groups``; return its password.

    :param password: the password to set; default a generated one.
    :param permanent: keep the password (the local demo user); default it is temporary and the
        user chooses their own at first sign-in.
    :raises UserError: unknown group, existing user, or a password the pool's policy refuses.
    """
    _check_groups(groups, identity)
    idp, pool_id = _pool(settings)
    password = password or generate_password(identity)
    try:
        idp.admin_create_user(
            UserPoolId=pool_id, Username=username, TemporaryPassword=password, MessageAction="SUPPRESS"
        )
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code == "UsernameExistsException":
            raise UserError(
                f"user {username!r} exists already (`image-etl users remove {username}` first)"
            ) from None
        if code in {"InvalidPasswordException", "InvalidParameterException"}:
            raise UserError(f"user {username!r} not created: {error.response['Error']['Message']}") from None
        raise
    if permanent:
        idp.admin_set_user_password(UserPoolId=pool_id, Username=username, Password=password, Permanent=True)
    for group in groups:
        idp.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)
    return password


def list_users(settings: Settings) -> list[User]:
    """Return every user of the pool with their groups, sorted by name."""
    idp, pool_id = _pool(settings)
    users = []
    for page in idp.get_paginator("list_users").paginate(UserPoolId=pool_id):
        for entry in page["Users"]:
            groups = idp.admin_list_groups_for_user(UserPoolId=pool_id, Username=entry["Username"])["Groups"]
            users.append(
                User(
                    username=entry["Username"],
                    groups=tuple(sorted(g["GroupName"] for g in groups)),
                    status=entry.get("UserStatus", ""),
                    enabled=entry.get("Enabled", True),
                    created=entry.get("UserCreateDate"),
                )
            )
    return sorted(users, key=lambda user: user.username.casefold())


def remove_user(settings: Settings, username: str) -> None:
    """Delete ``username`` from the pool; their tokens stop refreshing at once.

    :raises UserError: when there is no such user.
    """
    idp, pool_id = _pool(settings)
    try:
        idp.admin_delete_user(UserPoolId=pool_id, Username=username)
    except ClientError as error:
        if error.response["Error"]["Code"] == "UserNotFoundException":
            raise UserError(f"there is no user {username!r}") from None
        raise


def read_password_file(path: Path) -> str:
    """Return the password in ``path`` (its first line), refusing an empty file."""
    lines = path.read_text().splitlines()
    password = lines[0].strip() if lines else ""
    if not password:
        raise UserError(f"{path} holds no password")
    return password


def ensure_demo_user(settings: Settings, data_dir: Path, *, identity: IdentityShape = LOCAL.identity) -> str:
    """Make the local stack's `demo` user exist, in every group, with the password kept in the data
    dir (created mode 0600 on first start); return that password.

    A restart keeps both: the user comes back from the emulator's saved users and the password from
    the file. A deleted password file gets a new password.
    """
    path = data_dir / DEMO_PASSWORD_FILE
    password = path.read_text().strip() if path.exists() else ""
    idp, pool_id = _pool(settings)
    if not password:
        password = generate_password(identity)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
    try:
        idp.admin_get_user(UserPoolId=pool_id, Username=identity.demo_user)
    except ClientError as error:
        if error.response["Error"]["Code"] != "UserNotFoundException":
            raise
        add_user(
            settings,
            identity.demo_user,
            groups=list(identity.group_names),
            password=password,
            permanent=True,
            identity=identity,
        )
        return password
    idp.admin_set_user_password(
        UserPoolId=pool_id, Username=identity.demo_user, Password=password, Permanent=True
    )
    return password
