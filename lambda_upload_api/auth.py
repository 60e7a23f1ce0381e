"""Who is calling, and may they: the group check on the claims API Gateway's authorizer verified.

API Gateway's Cognito authorizer (in AWS) or the local stack's stand-in for it has already checked
the token's signature, issuer and expiry, and that it is an access token with the API's scope, and
hands its claims over in ``requestContext.authorizer.claims``. This module adds the two rules the
authorizer cannot express: the token must come from the page's own app client, and its user must
be in a group that grants what the route needs. Nothing here reads a token itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lambda_upload_api.config import ApiConfig
from lambda_upload_api.validation import ApiError

UPLOAD = "upload"
READ = "read"


@dataclass(frozen=True)
class Caller:
    """A signed-in user, as the verified token describes them."""

    username: str
    groups: frozenset[str]


def parse_groups(value: Any) -> frozenset[str]:
    """Return the ``cognito:groups`` claim as a set of names.

    API Gateway's REST authorizer passes every claim as a string: a list of groups arrives as
    ``"a,b"``; its HTTP-API cousin writes ``"[a b]"``; a direct JSON list is taken as it is.
    """
    if value is None:
        return frozenset()
    if isinstance(value, list | tuple):
        return frozenset(str(name) for name in value)
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        return frozenset(text[1:-1].replace(",", " ").split())
    return frozenset(name.strip() for name in text.split(",") if name.strip())


def caller_from(authorizer: Mapping[str, Any] | None, config: ApiConfig) -> Caller:
    """Return who is calling, from the authorizer's context; raise a 401 ApiError naming the rule broken.

    :param authorizer: ``requestContext.authorizer`` of the proxy event (None when no authorizer ran).
    """
    claims = (authorizer or {}).get("claims")
    if not isinstance(claims, Mapping) or not claims:
        raise ApiError(401, "unauthorized", "sign in first: this API needs a valid access token")
    if claims.get("client_id") != config.app_client_id:
        raise ApiError(401, "unauthorized", "the token was issued to another app client")
    username = str(claims.get("username") or claims.get("cognito:username") or claims.get("sub") or "")
    return Caller(username=username, groups=parse_groups(claims.get("cognito:groups")))


def require(caller: Caller, permission: str, config: ApiConfig) -> None:
    """Raise a 403 ApiError unless ``caller`` is in a group that grants ``permission``."""
    allowed = config.upload_groups if permission == UPLOAD else config.read_groups
    if not caller.groups & allowed:
        needed = " or ".join(sorted(allowed))
        action = "create uploads" if permission == UPLOAD else "read images"
        raise ApiError(
            403, "forbidden", f"user {caller.username!r} may not {action}: that needs the group {needed}"
        )
