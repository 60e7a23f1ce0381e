"""The local user pool: moto's Cognito made to behave like Cognito where sign-in depends on it, and
kept across restarts.

moto (5.2) issues real RS256 tokens but, left alone, accepts any password proof in SRP sign-in,
compares user names case-sensitively, gives every token a one-hour life whatever the app client
says, has no RevokeToken, answers no browser (CORS) and forgets every user when the process
ends. Each of those is fixed here, in one place, so the upload page signs in against the emulator
exactly as it does against Cognito:

- :func:`patch_moto_cognito`: real SRP verification (:mod:`image_etl.local.srp`), user names
  matched case-insensitively when the pool says so, token lifetimes from the app client,
  "incorrect user name or password" for unknown users when the client prevents user-existence
  errors, and RevokeToken (sign-out).
- :class:`CognitoCors`: Cognito's public calls answer the upload page's origin (only it).
- :class:`UserStore` + :class:`UserPersistence`: users, passwords, groups and MFA settings are
  written to ``<data dir>/users.json`` (mode 0600, atomically, before the client sees the answer)
  after every call that may change them, and put back at start-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from moto.cognitoidp.exceptions import InvalidParameterException, NotAuthorizedError, UserNotFoundError
from moto.cognitoidp.models import (
    CognitoIdpBackend,
    CognitoIdpUser,
    CognitoIdpUserPool,
    UserStatus,
)
from moto.cognitoidp.responses import CognitoIdpResponse
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow

from image_etl.local import srp

_TARGET_PREFIX = "AWSCognitoIdentityProviderService."
#: Calls that cannot change a user; after any other successful call the users are saved again.
_READ_ONLY = {
    "DescribeUserPool",
    "DescribeUserPoolClient",
    "ListUserPools",
    "ListUserPoolClients",
    "ListUsers",
    "ListGroups",
    "ListUsersInGroup",
    "AdminListGroupsForUser",
    "AdminGetUser",
    "GetUser",
    "GetGroup",
    "InitiateAuth",
    "GetUserPoolMfaConfig",
}
#: Pending SRP challenges by secret block; abandoned sign-ins are dropped oldest first.
_MAX_PENDING = 1000
_pending: OrderedDict[str, srp.Challenge] = OrderedDict()
_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


def _client_and_pool(backend: CognitoIdpBackend, client_id: str) -> tuple[Any, CognitoIdpUserPool] | None:
    for pool in backend.user_pools.values():
        if client_id in pool.clients:
            return pool.clients[client_id], pool
    return None


def _initiate_auth(original: Callable[..., Any]) -> Callable[..., Any]:
    def initiate_auth(
        self: CognitoIdpBackend, client_id: str, auth_flow: str, auth_parameters: dict[str, str]
    ) -> dict[str, Any]:
        found = _client_and_pool(self, client_id)
        extended = found[0].extended_config if found is not None else {}
        hide_unknown = extended.get("PreventUserExistenceErrors") == "ENABLED"
        try:
            result = original(self, client_id, auth_flow, auth_parameters)
        except UserNotFoundError:
            if hide_unknown:
                raise NotAuthorizedError("Incorrect username or password.") from None
            raise
        if auth_flow != "USER_SRP_AUTH" or found is None:
            return result
        _, pool = found
        user = self.admin_get_user(pool.id, auth_parameters["USERNAME"])
        try:
            challenge = srp.start_challenge(
                pool_name=pool.id.split("_", 1)[1],
                user_id=user.username,
                password=user.password or "",
                srp_a_hex=auth_parameters.get("SRP_A", ""),
            )
        except ValueError as error:
            raise InvalidParameterException(f"SRP_A is invalid: {error}") from None
        # moto looks the session up by the secret block the client echoes back.
        self.sessions[challenge.secret_block] = self.sessions.pop(result["Session"])
        _pending[challenge.secret_block] = challenge
        while len(_pending) > _MAX_PENDING:
            stale, _ = _pending.popitem(last=False)
            self.sessions.pop(stale, None)
        result["Session"] = challenge.secret_block
        result["ChallengeParameters"].update(
            challenge.parameters(), USERNAME=user.username, USER_ID_FOR_SRP=user.username
        )
        return result

    return initiate_auth


def _respond_to_auth_challenge(original: Callable[..., Any]) -> Callable[..., Any]:
    def respond_to_auth_challenge(
        self: CognitoIdpBackend,
        session: str,
        client_id: str,
        challenge_name: str,
        challenge_responses: dict[str, str],
    ) -> dict[str, Any]:
        if challenge_name == "PASSWORD_VERIFIER":
            block = challenge_responses.get("PASSWORD_CLAIM_SECRET_BLOCK", "")
            challenge = _pending.pop(block, None)
            proven = challenge is not None and challenge.accepts(
                timestamp=challenge_responses.get("TIMESTAMP", ""),
                signature=challenge_responses.get("PASSWORD_CLAIM_SIGNATURE", ""),
            )
            if not proven:
                self.sessions.pop(block, None)
                raise NotAuthorizedError("Incorrect username or password.")
        return original(self, session, client_id, challenge_name, challenge_responses)

    return respond_to_auth_challenge


def _get_user(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_user(self: CognitoIdpUserPool, username: str) -> CognitoIdpUser | None:
        user = original(self, username)
        case_sensitive = (self.extended_config.get("UsernameConfiguration") or {}).get("CaseSensitive", True)
        if user is None and username and not case_sensitive:
            folded = username.casefold()
            user = next((u for name, u in self.users.items() if name.casefold() == folded), None)
        return user

    return get_user


def _create_jwt(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_jwt(
        self: CognitoIdpUserPool,
        client_id: str,
        username: str,
        token_use: str,
        expires_in: int = 3600,
        extra_data: dict[str, Any] | None = None,
    ) -> tuple[str, int]:
        client = self.clients.get(client_id)
        kind = {"access": "AccessToken", "id": "IdToken"}.get(token_use)
        if client is not None and kind:
            validity = client.extended_config.get(f"{kind}Validity")
            unit = (client.extended_config.get("TokenValidityUnits") or {}).get(kind, "hours")
            if validity:
                expires_in = int(validity) * _SECONDS[unit]
        user = self._get_user(username)
        return original(
            self, client_id, user.username if user else username, token_use, expires_in, extra_data
        )

    return create_jwt


def _revoke_token(self: CognitoIdpResponse) -> ActionResult:
    """RevokeToken, which moto lacks: the page's sign-out ends its refresh token, as in Cognito."""
    token, client_id = self._get_param("Token"), self._get_param("ClientId")
    for pool in self.backend.user_pools.values():
        entry = pool.refresh_tokens.get(token)
        if entry is not None and entry[0] == client_id:
            pool.refresh_tokens[token] = None
    return EmptyResult()


def patch_moto_cognito() -> None:
    """Make moto's Cognito verify SRP proofs, fold user names, honour token lifetimes and revoke
    refresh tokens (idempotent)."""
    if getattr(CognitoIdpBackend, "_image_etl_patched", False):
        return
    CognitoIdpBackend.initiate_auth = _initiate_auth(CognitoIdpBackend.initiate_auth)  # type: ignore[method-assign]
    CognitoIdpBackend.respond_to_auth_challenge = _respond_to_auth_challenge(  # type: ignore[method-assign]
        CognitoIdpBackend.respond_to_auth_challenge
    )
    CognitoIdpUserPool._get_user = _get_user(CognitoIdpUserPool._get_user)  # type: ignore[method-assign]
    CognitoIdpUserPool.create_jwt = _create_jwt(CognitoIdpUserPool.create_jwt)  # type: ignore[method-assign]
    CognitoIdpResponse.revoke_token = _revoke_token  # type: ignore[attr-defined]
    CognitoIdpBackend._image_etl_patched = True  # type: ignore[attr-defined]


def cognito_action(environ: dict[str, Any]) -> str | None:
    """Return the Cognito API action of a request (``InitiateAuth``), or None for other services."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    return target[len(_TARGET_PREFIX) :] if target.startswith(_TARGET_PREFIX) else None


class CognitoCors:
    """Let the upload page call Cognito's public API on the emulator, as Cognito lets every page.

    Cognito's endpoint answers CORS preflights itself; moto's does not. Only ``allowed_origin`` (the
    local site) is answered, so another page in the browser cannot drive the local pool.
    """

    def __init__(self, app: Any, *, allowed_origin: str) -> None:
        self.app = app
        self.allowed_origin = allowed_origin.rstrip("/")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN", "")
        requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "").lower()
        is_preflight = environ["REQUEST_METHOD"] == "OPTIONS" and "x-amz-target" in requested
        if origin != self.allowed_origin or not (is_preflight or cognito_action(environ)):
            return self.app(environ, start_response)
        cors = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        if is_preflight:
            start_response(
                "200 OK",
                [
                    *cors,
                    ("Access-Control-Allow-Methods", "POST"),
                    ("Access-Control-Allow-Headers", requested),
                    ("Access-Control-Max-Age", "600"),
                    ("Content-Length", "0"),
                ],
            )
            return [b""]

        def with_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, *cors], exc_info)

        return self.app(environ, with_cors)


def _user_record(user: CognitoIdpUser) -> dict[str, Any]:
    return {
        "username": user.username,
        "sub": user.id,
        "password": user.password,
        "status": str(getattr(user.status, "value", user.status)),
        "enabled": user.enabled,
        "attributes": user.attributes,
        "groups": sorted(group.group_name for group in user.groups),
        "software_token_mfa_enabled": user.software_token_mfa_enabled,
        "token_verified": user.token_verified,
        "preferred_mfa_setting": user.preferred_mfa_setting,
        "created": user.create_date.isoformat(),
    }


class UserStore:
    """``users.json`` in the data dir: every user of the local pools, by pool name.

    It holds passwords in the clear (moto needs them to check sign-ins), so it is created with
    mode 0600 and lives in the data dir the stack's owner alone reads; it is a development
    stand-in, like the pool itself.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last = ""
        # Until the saved users are back, the pools in memory are not the truth: saving them then
        # (while the pool itself is being provisioned) would overwrite the file with nobody.
        self._restored = False

    def load(self) -> dict[str, list[dict[str, Any]]]:
        """Return pool name -> saved users (empty when nothing was saved yet)."""
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def save(self, backend: CognitoIdpBackend) -> bool:
        """Write every pool's users if they changed since the last save (and :meth:`restore` has run);
        return whether it wrote.

        Durable before returning (fsync of the file, then an atomic rename), so a sign-in answer or a
        `users add` that returned is never lost to a kill -9.
        """
        state = {
            pool.name: [_user_record(user) for user in pool.users.values()]
            for pool in backend.user_pools.values()
        }
        text = json.dumps(state, indent=1, sort_keys=True, default=str)
        if not self._restored or text == self._last:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".users-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._last = text
        return True

    def restore(self, backend: CognitoIdpBackend) -> int:
        """Put the saved users back into the pools of the same names; return how many."""
        saved = self.load()
        restored = 0
        for pool in backend.user_pools.values():
            for record in saved.get(pool.name, []):
                _restore_user(pool, record)
                restored += 1
        self._restored = True
        self.save(backend)
        return restored


def _restore_user(pool: CognitoIdpUserPool, record: dict[str, Any]) -> None:
    user = CognitoIdpUser(
        pool.id, record["username"], record["password"], UserStatus(record["status"]), record["attributes"]
    )
    user.id = record["sub"]
    user.update_attributes([{"Name": "sub", "Value": record["sub"]}])
    user.enabled = record["enabled"]
    user.software_token_mfa_enabled = record["software_token_mfa_enabled"]
    user.token_verified = record["token_verified"]
    user.preferred_mfa_setting = record["preferred_mfa_setting"]
    with contextlib.suppress(KeyError, ValueError):
        user.create_date = datetime.fromisoformat(record["created"])
    user.last_modified_date = utcnow()
    pool.users[user.username] = user
    for name in record["groups"]:
        group = pool.groups.get(name)
        if group is not None:
            group.users.add(user)
            user.groups.add(group)


class UserPersistence:
    """WSGI middleware: after a successful Cognito call that may change users, save them first."""

    def __init__(self, app: Any, store: UserStore, backend: CognitoIdpBackend) -> None:
        self.app = app
        self.store = store
        self.backend = backend

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        action = cognito_action(environ)
        if action is None or action in _READ_ONLY:
            return self.app(environ, start_response)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.update(status=status, headers=headers, exc_info=exc_info)
            return lambda data: None

        body = b"".join(self.app(environ, capture))
        if str(captured.get("status", "500")).startswith("2"):
            self.store.save(self.backend)
        start_response(captured["status"], captured["headers"], captured.get("exc_info"))
        return [body]
