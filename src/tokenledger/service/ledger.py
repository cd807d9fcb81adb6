"""``Ledger``: the application service's one entry point, a small facade.

The CLI, the HTTP API and Python callers use ``Ledger``; each of its methods hands the work
to the module with one reason to change: ``commands`` runs commands, ``answers`` answers about
tokens (with the answer cache), ``queries`` lists and looks up, ``oauth`` serves client
credentials and access tokens, ``audit`` answers audit queries. Every decision of who may do
what is made in ``domain.authority``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL

from tokenledger.clock import Clock, SystemClock, ensure_utc
from tokenledger.domain.authority import Verification
from tokenledger.domain.blast_radius import BlastRadius
from tokenledger.domain.model import (
    Actor,
    ClientCredentialView,
    EndpointView,
    IdentityProviderView,
    Introspection,
    IssuedAccessToken,
    IssuerTrustView,
    OrgPolicyView,
    ResourceView,
    S3CredentialView,
    ServiceAccountView,
    SessionView,
    TokenView,
    TrustedEndpointView,
    UserView,
)
from tokenledger.domain.permissions import Grant, Level
from tokenledger.domain.usage import check_usage_interval
from tokenledger.domain.who_can import WhoCan
from tokenledger.projections import Projector, SqlLedgerView
from tokenledger.projections.audit_queries import AuditEntry, AuditQuery, Explanation
from tokenledger.service import audit, oauth, queries, roles, temporal, token_selection
from tokenledger.service.answers import DEFAULT_VERIFY_STALENESS, TokenAnswers
from tokenledger.service.commands import (
    CommandPreview,
    CommandResult,
    Previewing,
    preview_command,
    refuse_in_dry_run,
    run_command,
)
from tokenledger.service.oauth import DEFAULT_ACCESS_TOKEN_LIFETIME
from tokenledger.service.queries import GrantSource, Identity
from tokenledger.service.temporal import LiveToken
from tokenledger.service.usage import UsageRecorder
from tokenledger.store import DEFAULT_DATABASE_URL, EventStore, open_event_store
from tokenledger.store.readers import ReadConnections

if TYPE_CHECKING:  # the commands (pydantic) and the signing keys load when first used
    from tokenledger.domain import commands as c
    from tokenledger.domain.org_policy import Breach
    from tokenledger.domain.s3 import S3Answer
    from tokenledger.domain.sigv4 import ReceivedRequest
    from tokenledger.domain.webhooks import WebhookView
    from tokenledger.service.keys import KeyRing, KeyStore
    from tokenledger.service.log_proofs import LogCheck
    from tokenledger.service.oidc import OidcClient
    from tokenledger.service.s3 import IssuedS3Credential
    from tokenledger.service.sessions import SessionTokens
    from tokenledger.service.subscription import Subscription
    from tokenledger.service.webhooks import CreatedWebhook, DeliveryView

__all__ = ["Ledger"]


class Ledger:
    """The service over one event store.

    ``verify_staleness`` bounds, in seconds, how long a token answer may be reused without
    re-reading the log's head (``0``, the default: re-read for every answer, so never stale;
    ``None``: no cache, every answer read from the projections).

    ``usage_interval`` records credentials' uses (last used, ``service.usage``) at most
    once per credential and interval (1 minute to 1 day; ``DEFAULT_USAGE_INTERVAL`` is 1
    hour); ``None``, the default for a ``Ledger`` opened here, records none. The HTTP API
    records them (``serve --usage-interval``).
    """

    def __init__(
        self,
        store: EventStore,
        *,
        verify_staleness: float | None = DEFAULT_VERIFY_STALENESS,
        usage_interval: timedelta | None = None,
    ) -> None:
        self.store = store
        self.projector = Projector()
        in_memory = store.engine.url.database in (None, "", ":memory:")
        # An in-memory SQLite database exists on its one shared connection only.
        self._readers = None if in_memory else ReadConnections(store.engine)
        self.answers = TokenAnswers(self, self._readers, staleness=verify_staleness)
        self.usage: UsageRecorder | None = None
        if usage_interval is not None:
            self.record_uses(usage_interval)

    @classmethod
    def open(
        cls,
        database_url: str | URL = DEFAULT_DATABASE_URL,
        *,
        clock: Clock | None = None,
        verify_staleness: float | None = DEFAULT_VERIFY_STALENESS,
        usage_interval: timedelta | None = None,
    ) -> Ledger:
        if usage_interval is not None:
            check_usage_interval(usage_interval)  # before the database is opened
        store = open_event_store(database_url, clock=clock or SystemClock())
        return cls(store, verify_staleness=verify_staleness, usage_interval=usage_interval)

    # -- last use (service.usage) ------------------------------------------------------------

    def record_uses(self, interval: timedelta, *, background: bool = True) -> UsageRecorder:
        """Record credentials' uses from now on, at most once per credential and
        ``interval``; ``background=False`` writes them only on ``flush_uses`` and ``close``
        (for tests). Uses noted under an earlier interval are written first."""
        recorder = UsageRecorder(self.execute, self._timestamp, interval, background=background)
        previous, self.usage = self.usage, recorder
        self.answers.record_uses(recorder)
        if previous is not None:
            previous.close()
        return recorder

    def flush_uses(self, now: datetime | None = None, *, everything: bool = False) -> int:
        """Write the uses of every interval closed at ``now`` (every interval, with
        ``everything``) now, rather than when the background thread would; the number of
        ``TokenUsed`` events appended."""
        usage = self.usage
        return 0 if usage is None else usage.flush(now, everything=everything)

    def _timestamp(self) -> float:
        return self.now().timestamp()

    def close(self) -> None:
        usage, self.usage = self.usage, None
        if usage is not None:
            self.answers.record_uses(None)
            usage.close()  # the open interval's uses too
        self.answers.stop_following()
        if self._readers is not None:
            self._readers.close()
        self.store.engine.dispose()

    @property
    def clock(self) -> Clock:
        return self.store.clock

    def now(self) -> datetime:
        return ensure_utc(self.clock.now())

    @contextmanager
    def view(self) -> Iterator[SqlLedgerView]:
        """A consistent read of the projections."""
        with self.store.engine.connect() as connection, connection.begin():
            yield SqlLedgerView(connection)

    # -- commands ----------------------------------------------------------------------------

    def execute(
        self, command: c.Command, actor: Actor, *, correlation_id: str | None = None
    ) -> CommandResult:
        """Decide and record ``command`` atomically; raise a ``LedgerError`` and append
        nothing when it is refused (or asked for inside a dry run, ``previews_only``)."""
        refuse_in_dry_run()
        return run_command(
            self.store, self.projector, command, actor, correlation_id=correlation_id
        )

    def preview(
        self, command: c.Command, actor: Actor, *, correlation_id: str | None = None
    ) -> CommandPreview:
        """What ``execute`` would append now, decided on a read snapshot without the write
        lock; raise the ``LedgerError`` it would raise. Appends nothing."""
        return preview_command(self.store, command, actor, correlation_id=correlation_id)

    def _executor(
        self, *, dry_run: bool, correlation_id: str | None
    ) -> Callable[..., CommandResult]:
        """The ``execute`` callable for a service function: the real one, or for a dry run
        one that previews and raises ``PreviewReady``."""
        if dry_run:
            return Previewing(
                self.preview,
                correlation_id=correlation_id,
                log_position=lambda: self.store.head().position,
            )
        return functools.partial(self.execute, correlation_id=correlation_id)

    # -- token answers (service.answers) -------------------------------------------------------

    def verify(
        self, secret: str, *, resource: str | None = None, level: Level | None = None
    ) -> Verification:
        return self.answers.verify(secret, resource=resource, level=level)

    def verify_at(
        self,
        secret: str,
        moment: datetime,
        *,
        resource: str | None = None,
        level: Level | None = None,
    ) -> tuple[Verification, int]:
        return self.answers.verify_at(secret, moment, resource=resource, level=level)

    def authenticate(self, secret: str, *, read_through: bool = False) -> Actor:
        return self.answers.authenticate(secret, read_through=read_through)

    def introspect(
        self,
        token: str,
        keys: KeyRing | None,
        *,
        issuer: str,
        resource: str | None = None,
        level: Level | None = None,
    ) -> Introspection:
        return self.answers.introspect(token, keys, issuer=issuer, resource=resource, level=level)

    def peek_introspection(
        self, token: str, *, resource: str | None = None, level: Level | None = None
    ) -> Introspection | None:
        return self.answers.peek_introspection(token, resource=resource, level=level)

    def use_answer_cache(self, staleness: float | None) -> None:
        self.answers.use_cache(staleness)

    def observe_answers(self, observer: Callable[[bool], None]) -> None:
        self.answers.observe(observer)

    @property
    def cached_answers(self) -> int:
        return self.answers.cached

    @property
    def answer_staleness(self) -> float | None:
        return self.answers.staleness

    def answers_past_bound(self) -> bool:
        return self.answers.past_bound()

    def refresh_answers(self) -> None:
        self.answers.refresh()

    # -- listings and lookups (service.queries) ---------------------------------------------

    def list_orgs(self, actor: Actor) -> list[str]:
        return queries.list_orgs(self, actor)

    def list_users(self, actor: Actor, org: str | None = None) -> list[UserView]:
        return queries.list_users(self, actor, org)

    def members(self, actor: Actor, org: str) -> dict[str, str]:
        return queries.members(self, actor, org)

    def list_resources(self, actor: Actor, prefix: str | None = None) -> list[ResourceView]:
        return queries.list_resources(self, actor, prefix)

    def get_resource(self, actor: Actor, path: str, *, at: datetime | None = None) -> ResourceView:
        return queries.get_resource(self, actor, path, at=at)

    def grants_of(self, actor: Actor, principal: str) -> list[GrantSource]:
        return queries.grants_of(self, actor, principal)

    def roles_of(self, actor: Actor, org: str) -> dict[str, tuple[Grant, ...]]:
        return queries.roles_of(self, actor, org)

    def service_accounts(self, actor: Actor, org: str | None = None) -> list[ServiceAccountView]:
        return queries.service_accounts(self, actor, org)

    def tokens_of(
        self,
        actor: Actor,
        principal: str,
        *,
        include_inactive: bool = False,
        at: datetime | None = None,
    ) -> list[TokenView]:
        return queries.tokens_of(self, actor, principal, include_inactive=include_inactive, at=at)

    def get_token(self, actor: Actor, token_id: str, *, owner: str | None = None) -> TokenView:
        return queries.get_token(self, actor, token_id, owner=owner)

    def preview_revocation(self, actor: Actor, where: c.TokenCriteria) -> list[TokenView]:
        """What ``RevokeTokensWhere(where=where)`` would revoke (before derived tokens)."""
        return token_selection.revocation_preview(self, actor, where)

    def expiring_tokens(
        self, actor: Actor, within: timedelta, *, org: str | None = None
    ) -> list[TokenView]:
        """Live tokens visible to ``actor`` expiring within ``within``, soonest first."""
        return token_selection.expiring(self, actor, within, org)

    def unused_tokens(
        self, actor: Actor, unused_for: timedelta, *, org: str | None = None
    ) -> list[TokenView]:
        """Live tokens visible to ``actor`` unused for at least ``unused_for``, by id."""
        return token_selection.unused(self, actor, unused_for, org)

    def get_service_account(self, actor: Actor, account_id: str) -> ServiceAccountView:
        return queries.get_service_account(self, actor, account_id)

    def client_credentials_of(
        self, actor: Actor, account_id: str, *, include_inactive: bool = False
    ) -> list[ClientCredentialView]:
        return queries.client_credentials_of(
            self, actor, account_id, include_inactive=include_inactive
        )

    # -- roles' policies and keys (service.roles) -------------------------------------------

    def role_grants(self, actor: Actor, org: str, role: str) -> tuple[Grant, ...]:
        return roles.role_grants(self, actor, org, role)

    def role_keys(
        self, actor: Actor, org: str, role: str, *, include_inactive: bool = False
    ) -> list[TokenView]:
        return roles.role_keys(self, actor, org, role, include_inactive=include_inactive)

    # -- OAuth 2.0 (service.oauth) ---------------------------------------------------------

    def authenticate_client(
        self, client_id: str, client_secret: str
    ) -> tuple[ClientCredentialView, ServiceAccountView]:
        credential, account = oauth.authenticate_client(self, client_id, client_secret)
        self.answers.note_use(credential.client_id)
        return credential, account

    def issue_access_token(
        self,
        credential: ClientCredentialView,
        account: ServiceAccountView,
        keys: KeyRing,
        *,
        issuer: str,
        scope: str | None = None,
        lifetime: timedelta = DEFAULT_ACCESS_TOKEN_LIFETIME,
    ) -> IssuedAccessToken:
        return oauth.issue_access_token(
            self, credential, account, keys, issuer=issuer, scope=scope, lifetime=lifetime
        )

    def revoke_presented(
        self,
        secret: str,
        actor: Actor,
        *,
        reason: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandResult | None:
        return oauth.revoke_presented(
            self, self.execute, secret, actor, reason=reason, correlation_id=correlation_id
        )

    def authenticate_access_token(self, token: str, keys: KeyRing, *, issuer: str) -> Actor:
        actor = oauth.authenticate_access_token(self, token, keys, issuer)
        if actor.via is not None:  # a use of what obtained it
            self.answers.note_use(actor.via.source)
        return actor

    def exchange_token(
        self, subject_token: str, account_id: str, keys: KeyRing, oidc: OidcClient, *, issuer: str
    ) -> IssuedAccessToken:
        from tokenledger.service import federation  # loaded on first use

        return federation.exchange_token(
            self, keys, oidc, issuer=issuer, subject_token=subject_token, account_id=account_id
        )

    # -- logging in and sessions (service.login, service.sessions) -----------------------------

    def begin_login(
        self,
        keys: KeyRing,
        oidc: OidcClient,
        *,
        issuer: str,
        public_url: str,
        org: str,
        client_id: str,
        redirect_uri: str,
        challenge: str,
        challenge_method: str,
        state: str,
    ) -> str:
        from tokenledger.service import login  # loaded on first use

        return login.begin_login(
            self,
            keys,
            oidc,
            issuer=issuer,
            public_url=public_url,
            org=org,
            client_id=client_id,
            redirect_uri=redirect_uri,
            challenge=challenge,
            challenge_method=challenge_method,
            state=state,
        )

    def finish_login(
        self,
        keys: KeyRing,
        oidc: OidcClient,
        *,
        issuer: str,
        public_url: str,
        state: str,
        code: str | None,
        error: str | None,
        error_description: str | None,
    ) -> str:
        from tokenledger.service import login  # loaded on first use

        return login.finish_login(
            self,
            keys,
            oidc,
            issuer=issuer,
            public_url=public_url,
            state=state,
            code=code,
            error=error,
            error_description=error_description,
        )

    def redeem_login_code(
        self,
        keys: KeyRing,
        *,
        issuer: str,
        code: str,
        code_verifier: str,
        redirect_uri: str,
        client_id: str,
    ) -> SessionTokens:
        from tokenledger.service import login  # loaded on first use

        return login.redeem_login_code(
            self,
            self.execute,
            keys,
            issuer=issuer,
            code=code,
            code_verifier=code_verifier,
            redirect_uri=redirect_uri,
            client_id=client_id,
        )

    def refresh_session(self, refresh_token: str, keys: KeyRing, *, issuer: str) -> SessionTokens:
        from tokenledger.service import sessions  # loaded on first use

        tokens = sessions.refresh_session(
            self, self.execute, keys, issuer=issuer, refresh_token=refresh_token
        )
        self.answers.note_use(tokens.session_id)  # a refresh is a use of the session
        return tokens

    def log_out(self, refresh_token: str) -> CommandResult | None:
        from tokenledger.service import sessions  # loaded on first use

        return sessions.end_session_by_refresh_token(self, self.execute, refresh_token)

    def set_identity_provider(
        self,
        actor: Actor,
        keys: KeyStore | None,
        *,
        org: str,
        issuer: str,
        oidc_client_id: str,
        client_secret: str | None = None,
        session_lifetime: timedelta | None = None,
        dry_run: bool = False,
    ) -> CommandResult | None:
        from tokenledger.service import identity  # loaded on first use

        return identity.set_identity_provider(
            self,
            self._executor(dry_run=dry_run, correlation_id=None),
            keys,
            actor,
            org=org,
            issuer=issuer,
            oidc_client_id=oidc_client_id,
            client_secret=client_secret,
            session_lifetime=session_lifetime,
        )

    def identity_provider(self, actor: Actor, org: str) -> IdentityProviderView:
        from tokenledger.service import identity  # loaded on first use

        return identity.identity_provider(self, actor, org)

    def issuer_trusts_of(
        self, actor: Actor, account_id: str, *, include_withdrawn: bool = False
    ) -> list[IssuerTrustView]:
        return queries.issuer_trusts_of(
            self, actor, account_id, include_withdrawn=include_withdrawn
        )

    # -- orgs' token policies (service.policies) -----------------------------------------------

    def org_policy(self, actor: Actor, org: str) -> OrgPolicyView | None:
        from tokenledger.service import policies  # loaded on first use

        return policies.org_policy(self, actor, org)

    def policy_dry_run(self, actor: Actor, command: c.SetOrgPolicy) -> list[Breach]:
        from tokenledger.service import policies  # loaded on first use

        return policies.policy_dry_run(self, actor, command)

    # -- the data plane (service.s3) ------------------------------------------------------

    def endpoints(self) -> list[EndpointView]:
        from tokenledger.service import s3  # loaded on first use

        return s3.endpoints(self)

    def get_endpoint(self, ref: str) -> EndpointView:
        from tokenledger.service import s3  # loaded on first use

        return s3.get_endpoint(self, ref)

    def trusted_endpoints_of(
        self, actor: Actor, account_id: str
    ) -> list[tuple[TrustedEndpointView, EndpointView]]:
        from tokenledger.service import s3  # loaded on first use

        return s3.trusted_endpoints_of(self, actor, account_id)

    def s3_credentials_of(
        self, actor: Actor, account_id: str, *, include_revoked: bool = False
    ) -> list[S3CredentialView]:
        from tokenledger.service import s3  # loaded on first use

        return s3.s3_credentials_of(self, actor, account_id, include_revoked=include_revoked)

    def issue_s3_credential(
        self,
        actor: Actor,
        keys: KeyStore | None,
        *,
        account_id: str,
        endpoint: str | None,
        correlation_id: str | None = None,
        dry_run: bool = False,
    ) -> IssuedS3Credential:
        from tokenledger.service import s3  # loaded on first use

        return s3.issue_s3_credential(
            self,
            self._executor(dry_run=dry_run, correlation_id=correlation_id),
            keys,
            actor,
            account_id=account_id,
            endpoint=endpoint,
        )

    def check_s3_request(
        self, keys: KeyStore | None, endpoint: str, request: ReceivedRequest
    ) -> S3Answer:
        from tokenledger.service import s3  # loaded on first use

        return s3.check_request(self, keys, endpoint, request)

    # -- webhooks (service.webhooks; the deliverer is service.notify) -------------------------

    def create_webhook(
        self,
        actor: Actor,
        keys: KeyStore | None,
        *,
        org: str,
        url: str,
        events: tuple[str, ...],
        correlation_id: str | None = None,
        dry_run: bool = False,
    ) -> CreatedWebhook:
        from tokenledger.service import webhooks  # loaded on first use

        return webhooks.create_webhook(
            self,
            self._executor(dry_run=dry_run, correlation_id=correlation_id),
            keys,
            actor,
            org=org,
            url=url,
            events=events,
        )

    def rotate_webhook_secret(
        self,
        actor: Actor,
        keys: KeyStore | None,
        webhook_id: str,
        *,
        correlation_id: str | None = None,
        dry_run: bool = False,
    ) -> CreatedWebhook:
        from tokenledger.service import webhooks  # loaded on first use

        execute = self._executor(dry_run=dry_run, correlation_id=correlation_id)
        return webhooks.rotate_webhook_secret(self, execute, keys, actor, webhook_id)

    def webhooks(self, actor: Actor, org: str | None = None) -> list[WebhookView]:
        from tokenledger.service import webhooks  # loaded on first use

        return webhooks.webhooks(self, actor, org)

    def get_webhook(self, actor: Actor, webhook_id: str) -> WebhookView:
        from tokenledger.service import webhooks  # loaded on first use

        return webhooks.get_webhook(self, actor, webhook_id)

    def webhook_deliveries(
        self, actor: Actor, webhook_id: str, *, limit: int = 50
    ) -> list[DeliveryView]:
        from tokenledger.service import webhooks  # loaded on first use

        return webhooks.deliveries_of(self, actor, webhook_id, limit=limit)

    def who_is(self, actor: Actor) -> Identity:
        return queries.who_is(self, actor)

    def sessions_of(
        self, actor: Actor, principal: str, *, include_ended: bool = False
    ) -> list[SessionView]:
        return queries.sessions_of(self, actor, principal, include_ended=include_ended)

    # -- following the log (service.subscription) --------------------------------------------

    def subscribe(self, after: int = 0) -> Subscription:
        """The log's events after position ``after``, then each commit as it lands."""
        from tokenledger.service.subscription import Subscription  # loaded on first use

        return Subscription(self.store, after=after)

    def subscribe_async(self, after: int = 0) -> Subscription:
        """``subscribe``, for ``async for`` (or ``await next_batch_async``)."""
        return self.subscribe(after)

    # -- audit (service.audit) -------------------------------------------------------------

    def audit_search(self, actor: Actor, query: AuditQuery) -> list[AuditEntry]:
        return audit.audit_search(self, actor, query)

    def explain_token(self, actor: Actor, token_id: str) -> Explanation:
        return audit.explain_token(self, actor, token_id)

    def blast_radius(self, actor: Actor, token_id: str) -> BlastRadius:
        return audit.blast_radius(self, actor, token_id)

    def check_log(self, actor: Actor) -> LogCheck:
        """The whole log checked as ``tokenledger log verify`` checks it (its chain, then its
        stored Merkle tree), for the operator and an org's admins and auditors."""
        from tokenledger.service.log_proofs import check_log

        return check_log(self, self.store, actor)

    def who_can(
        self, actor: Actor, resource: str, level: Level, *, at: datetime | None = None
    ) -> tuple[WhoCan, int]:
        """Who could do ``level`` on ``resource`` at ``at`` (now by default), each with the
        grant path that allows it, and the log position the answer reflects."""
        return temporal.who_can_at(self, actor, resource, level, at)

    def live_tokens(
        self,
        actor: Actor,
        start: datetime,
        end: datetime,
        *,
        principal: str | None = None,
        resource: str | None = None,
    ) -> list[LiveToken]:
        """The tokens usable at some moment of ``[start, end]``."""
        return temporal.live_tokens(self, actor, start, end, principal=principal, resource=resource)
