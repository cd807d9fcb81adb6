"""Setting an org's identity provider, with the provider's client secret kept beside the
signing keys (never in the log), and reading it back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from tokenledger.domain.authority import authorise_provider_setting, require_reader
from tokenledger.domain.model import Actor, IdentityProviderView
from tokenledger.errors import Conflict, NotFound, ValidationError
from tokenledger.service.commands import CommandResult, Previewing
from tokenledger.service.reading import Reader, valid_org

if TYPE_CHECKING:
    from tokenledger.service.keys import KeyStore

__all__ = ["MAX_PROVIDER_SECRET_LENGTH", "identity_provider", "set_identity_provider"]

MAX_PROVIDER_SECRET_LENGTH = 1000


def set_identity_provider(
    reader: Reader,
    execute: Callable[..., CommandResult],
    keys: KeyStore | None,
    actor: Actor,
    *,
    org: str,
    issuer: str,
    oidc_client_id: str,
    client_secret: str | None,
    session_lifetime: timedelta | None = None,
) -> CommandResult | None:
    """Record ``IdentityProviderSet`` and keep ``client_secret`` with the signing keys.

    The actor's authority is checked before anything is done, and the secret is kept once
    the event is recorded. Giving only a new secret for the provider already set (rotating
    it) keeps the secret and records nothing: ``None``.
    """
    from tokenledger.domain import commands as c  # pydantic loads with the first command

    org = valid_org(org)
    if client_secret is not None:
        client_secret = client_secret.strip()
        if not client_secret or len(client_secret) > MAX_PROVIDER_SECRET_LENGTH:
            raise ValidationError(
                f"the provider's client secret must be 1 to {MAX_PROVIDER_SECRET_LENGTH} characters"
            )
        if not client_secret.isprintable():
            raise ValidationError("the provider's client secret must be printable")
        if keys is None:
            raise ValidationError("this server keeps no signing keys, so no provider secret")
    command = c.build(
        c.SetIdentityProvider,
        org=org,
        issuer=issuer,
        oidc_client_id=oidc_client_id,
        client_secret=client_secret is not None,
        session_lifetime=session_lifetime,
    )
    with reader.view() as view:
        authorise_provider_setting(view, actor, org, command.issuer, reader.now())
        if not view.org_exists(org):
            raise NotFound(f"no org {org}")
        current = view.identity_provider(org)
    # A dry run's execute answers with its preview (PreviewReady) and never returns: the
    # secret is kept only by a real run.
    try:
        result = execute(command, actor)
    except Conflict:
        if client_secret is not None and current is not None and current.client_secret:
            if isinstance(execute, Previewing):
                execute.nothing_appended()
            _keep(keys, org, client_secret)  # the same provider, a new secret: nothing to record
            return None
        raise
    # Kept once the event is recorded (a refused command leaves the old secret in force); if
    # keeping it fails, giving the same provider and secret again keeps it.
    if client_secret is not None:
        _keep(keys, org, client_secret)
    elif keys is not None and not keys.read_only:
        keys.set_provider_secret(org, None)  # a provider without one: forget the old one
    return result


def _keep(keys: KeyStore | None, org: str, client_secret: str) -> None:
    assert keys is not None  # checked above
    keys.set_provider_secret(org, client_secret)


def identity_provider(reader: Reader, actor: Actor, org: str) -> IdentityProviderView:
    """The org's provider, for whoever may read the org."""
    org = valid_org(org)
    with reader.view() as view:
        require_reader(view, actor, org, reader.now(), f"see the identity provider of {org}")
        found = view.identity_provider(org)
    if found is None:
        raise NotFound(f"org {org} has no identity provider")
    return found
