"""The local stand-in for API Gateway's Cognito user-pool authorizer.

In AWS, API Gateway checks the ``Authorization`` header of every API request against the user pool
(signature with the pool's keys, issuer, expiry; with authorization scopes on the method, an access
token carrying the scope) before the upload function runs, and hands the token's claims to it as
``requestContext.authorizer.claims`` (every value a string). The local site server does the same
with this class, on the same tokens, so the upload function's own checks (app client, group) run
unchanged in both places. Where the two differ is only in what a refusal says: API Gateway answers
"Unauthorized", this names the rule that failed.
"""

from __future__ import annotations

from typing import Any

import jwt


class Unauthorized(Exception):
    """A request without a token the pool would accept; the message names the rule it broke."""


class CognitoAuthorizer:
    """Verify user-pool access tokens the way API Gateway's Cognito authorizer does.

    :param issuer: the pool's ``iss`` (`Settings.token_issuer`).
    :param jwks_url: where the pool's public keys are (`Settings.jwks_url`).
    :param scope: the scope an access token must carry (`IdentityShape.api_scope`).
    """

    def __init__(self, *, issuer: str, jwks_url: str, scope: str) -> None:
        self.issuer = issuer
        self.scope = scope
        # Keys are fetched once and cached; a token naming an unknown key refetches them.
        self._keys = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=10)

    def claims(self, authorization: str | None) -> dict[str, str]:
        """Return the verified token's claims as API Gateway passes them (strings; groups joined by ",").

        :param authorization: the request's ``Authorization`` header: the token, optionally after
            ``Bearer ``.
        :raises Unauthorized: for a missing, malformed, unsigned, tampered, expired, foreign or
            ID token, naming which.
        """
        token = (authorization or "").strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            raise Unauthorized("no token: sign in and send the access token in the Authorization header")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise Unauthorized("the Authorization header does not hold a JSON Web Token") from None
        if header.get("alg") != "RS256":
            raise Unauthorized(f"the token is signed with {header.get('alg')!r}; only RS256 is accepted")
        try:
            key = self._keys.get_signing_key(str(header.get("kid")))
        except jwt.PyJWKClientError:
            raise Unauthorized("the token names a signing key this user pool does not have") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                issuer=self.issuer,
                options={"verify_aud": False, "require": ["exp", "iss", "token_use"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired: sign in again (or refresh the session)") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("the token was issued by another user pool") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("the token's signature does not match this user pool's keys") from None
        except jwt.InvalidTokenError as error:
            raise Unauthorized(f"the token is not valid: {error}") from None
        if claims.get("token_use") != "access":
            raise Unauthorized(f"an access token is required, not an {claims.get('token_use')!r} token")
        if self.scope not in str(claims.get("scope", "")).split():
            raise Unauthorized(f"the access token lacks the scope {self.scope!r}")
        return {name: _as_claim(value) for name, value in claims.items()}


def _as_claim(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)
