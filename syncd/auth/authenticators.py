"""Which authenticator an account's connections use: password LOGIN or OAuth2.

``authenticator_for(account)`` is what the stores call when they open a
connection.  For ``auth = "password"`` it returns a fresh
:class:`~syncd.auth.credentials.PasswordAuthenticator` (the password is fetched
at each login and dropped).  For ``auth = "oauth2"`` it returns the account's one
:class:`~syncd.auth.oauth2.OAuth2Authenticator` (or token-command authenticator)
for the life of the process: the access token is cached inside it, so every
connection of a sync and of the daemon shares one token and one refresh, instead
of asking the token endpoint per connection.  That is the only state kept here;
a reload with changed OAuth2 settings gets a new authenticator (the key below
changes), and nothing is written anywhere.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final

from syncd.auth.credentials import Authenticator, PasswordAuthenticator, password_source_for

if TYPE_CHECKING:
    from syncd.config import AccountConfig
    from syncd.config.oauth2 import OAuth2Settings

_Key = tuple[str, str, "OAuth2Settings | None", "tuple[str, ...] | None"]

_lock: Final = threading.Lock()
_oauth2: dict[_Key, Authenticator] = {}


def authenticator_for(account: AccountConfig) -> Authenticator:
    """The authenticator for a new connection of *account* (see the module docstring)."""
    if account.auth != "oauth2":
        return PasswordAuthenticator(account.user, password_source_for(account))
    key: _Key = (account.name, account.user, account.oauth2, account.oauth2_token_command)
    with _lock:
        found = _oauth2.get(key)
        if found is None:
            # Imported here: authlib and requests are only needed by OAuth2 accounts,
            # and `syncd check` / a password account's sync should not load them.
            from syncd.auth.oauth2 import authenticator_for_oauth2

            source = account.oauth2 if account.oauth2 is not None else account.oauth2_token_command
            assert source is not None  # the config requires one of them with auth = "oauth2"
            found = authenticator_for_oauth2(account.name, source, account.user)
            _oauth2[key] = found
        return found
