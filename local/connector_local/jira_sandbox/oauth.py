"""The sandbox's OAuth 2.0 (3LO) side: grants, rotating refresh tokens with a reuse leeway, access tokens, sites."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from werkzeug.wrappers import Request, Response

from .common import HttpError, _json_response


class OAuthMixin:
    """Token endpoint, grants and ``accessible-resources``; state lives on the ``JiraSandbox`` that mixes this in."""

    # OAuth ------------------------------------------------------------------------------------------------------------

    def _new_grant(self, scopes: tuple[str, ...] | None = None) -> str:
        """A person's consent; it covers ``scopes`` (default: what the sandbox grants, ``granted_scopes``)."""
        grant = "grant-" + secrets.token_hex(6)
        self._grants[grant] = {"alive": True, "created": self.now(),
                               "scopes": tuple(self.granted_scopes if scopes is None else scopes)}
        return grant

    def _new_refresh_token(self, grant: str) -> str:
        token = "sbx-rt-" + secrets.token_urlsafe(24)
        self._refresh_tokens[token] = {"grant": grant, "issued_at": self.now(), "rotated_at": None, "access": None}
        return token

    def _issue_pair(self, grant: str) -> dict[str, Any]:
        refresh = self._new_refresh_token(grant)
        access = "sbx-at-" + secrets.token_urlsafe(24)
        self._access_tokens[access] = {"grant": grant, "expires_at": self.now() + self.access_token_lifetime}
        self._refresh_tokens[refresh]["access"] = access
        return {"access_token": access, "refresh_token": refresh, "expires_in": int(self.access_token_lifetime),
                "token_type": "Bearer", "scope": " ".join(self._grants[grant]["scopes"])}

    def _token_endpoint(self, request: Request) -> Response:
        if request.mimetype != "application/json":
            raise HttpError(400, body={"error": "invalid_request",
                                       "error_description": "the token endpoint takes a JSON body"})
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise HttpError(400, body={"error": "invalid_request", "error_description": "body is not a JSON object"})
        if body.get("client_id") != self.client_id or not hmac.compare_digest(
                str(body.get("client_secret", "")), self.client_secret):
            raise HttpError(401, body={"error": "access_denied", "error_description": "Unauthorized"})
        grant_type = body.get("grant_type")
        if grant_type == "authorization_code":
            code = self._codes.pop(str(body.get("code", "")), None)
            if not code or code["expires_at"] < self.now() or code["redirect_uri"] != body.get("redirect_uri"):
                raise HttpError(403, body={"error": "invalid_grant", "error_description": "Invalid authorization code"})
            return _json_response(200, self._issue_pair(self._new_grant(code.get("scopes"))))
        if grant_type == "refresh_token":
            return _json_response(200, self._rotate(str(body.get("refresh_token", ""))))
        raise HttpError(400, body={"error": "unsupported_grant_type", "error_description": f"{grant_type!r}"})

    def _rotate(self, token: str) -> dict[str, Any]:
        invalid = HttpError(403, body={"error": "invalid_grant",
                                       "error_description": "Unknown or invalid refresh token."})
        record = self._refresh_tokens.get(token)
        if record is None or not self._grants[record["grant"]]["alive"]:
            raise invalid
        moment = self.now()
        grant = self._grants[record["grant"]]
        if moment - grant["created"] > 365 * 86400 or (record["rotated_at"] is None
                                                       and moment - record["issued_at"] > 90 * 86400):
            grant["alive"] = False
            raise invalid
        if record["rotated_at"] is not None and moment - record["rotated_at"] > self.refresh_leeway_seconds:
            grant["alive"] = False  # a replay outside the leeway: the whole chain is revoked
            raise invalid
        if record["rotated_at"] is None:
            record["rotated_at"] = moment
            companion = self._access_tokens.get(record["access"] or "")
            if companion:  # the old access token stays usable for the leeway only
                companion["expires_at"] = min(companion["expires_at"], moment + self.refresh_leeway_seconds)
        self._refreshes += 1
        return self._issue_pair(record["grant"])

    def _authenticate(self, request: Request) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        record = self._access_tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if record is None or not self._grants[record["grant"]]["alive"] or record["expires_at"] <= self.now():
            raise HttpError(401, ["You are not authorized to perform this operation: the access token is missing, "
                                  "expired or revoked."])
        return record["grant"]

    def _accessible_resources(self) -> list[dict[str, Any]]:
        """Every site of the grant, the connector's own last: callers must match on ``url``, not take the first."""
        scopes = ["read:jira-work", "write:jira-work", "manage:jira-webhook"]
        avatar = "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/rocket.png"
        return [{"id": self.cloud_ids[site], "url": site, "name": site.split("//")[-1].split(".")[0],
                 "scopes": scopes, "avatarUrl": avatar} for site in reversed(self.sites)]
