"""XOAUTH2 access tokens (Microsoft 365 and others) for the IMAP receiver and the SMTP relay:
from a command that prints one, or from msal client credentials (the `m365` extra)."""

from __future__ import annotations

import shlex
import subprocess
import time
from typing import Any

from mailflow.settings import OAuth2

# Log in again with a fresh token this many seconds before it expires: less than msal's own
# five minutes, so by then msal asks Microsoft for a new token instead of its cached one.
TOKEN_MARGIN = 240


class TokenError(Exception):
    """No access token for XOAUTH2: the command failed, or Microsoft refused."""


class Tokens:
    """XOAUTH2 access tokens from `token_command` or from msal client credentials."""

    def __init__(self, cfg: OAuth2):
        self.cfg = cfg
        self.expires_at: float | None = None  # time.monotonic()
        self._msal: Any = None

    def get(self) -> str:
        if self.cfg.token_command:
            return self._command(self.cfg.token_command)
        token, expires_in = self._client_credentials()
        long_enough = expires_in and expires_in > 2 * TOKEN_MARGIN  # else no early re-login
        self.expires_at = time.monotonic() + expires_in if long_enough else None
        return token

    def expiring(self) -> bool:
        return self.expires_at is not None and time.monotonic() > self.expires_at - TOKEN_MARGIN

    @staticmethod
    def _command(command: str) -> str:
        try:
            done = subprocess.run(shlex.split(command), capture_output=True, text=True,
                                  timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise TokenError(f"token_command failed: {e}") from None
        token = done.stdout.strip()
        if done.returncode != 0 or not token:
            raise TokenError(f"token_command exited {done.returncode} without a token: "
                             f"{done.stderr.strip()[:300]}")
        return token

    def _client_credentials(self) -> tuple[str, int | None]:
        if self._msal is None:
            try:
                import msal
            except ImportError:
                raise TokenError(f"[{self.cfg.section}] tenant_id needs msal: "
                                 "pip install 'mailflow[m365]'") from None
            self._msal = msal.ConfidentialClientApplication(
                self.cfg.client_id, client_credential=self.cfg.secret,
                authority=f"{self.cfg.authority.rstrip('/')}/{self.cfg.tenant_id}")
        # msal answers from its cache until the token is close to expiry, then asks again.
        result = self._msal.acquire_token_for_client(scopes=[self.cfg.scope])
        if "access_token" not in result:
            raise TokenError(f"Microsoft refused a token: {result.get('error')}: "
                             f"{result.get('error_description')}")
        return result["access_token"], result.get("expires_in")


def xoauth2(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64), as Google and Microsoft define it."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"
