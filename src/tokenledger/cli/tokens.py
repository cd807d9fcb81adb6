"""``tokenledger tokens``: issue, inspect, revoke and verify tokens.

A secret is printed once, by ``tokens create``; everywhere else a token is named by its
public id (``tok_...``), and no other command ever prints a secret.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

import click
import msgspec

from tokenledger.cli.app import TOKEN_ENV, CliContext
from tokenledger.cli.common import checked, parse_timestamp
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.grants import grant_dicts, grants_text, parse_level, token_holder
from tokenledger.cli.lazy import LazyCommand, LazyGroup
from tokenledger.cli.output import echo_json, format_timestamp
from tokenledger.domain.names import check_token_id, shown
from tokenledger.domain.secrets import looks_like_secret
from tokenledger.errors import ValidationError

if TYPE_CHECKING:
    from tokenledger.cli.grant_files import GrantConfig
    from tokenledger.domain import commands as c
    from tokenledger.domain.events import TokenIssued
    from tokenledger.domain.model import TokenView
    from tokenledger.service import CommandResult, Verification

__all__ = ["echo_revoked", "tokens"]

#: More than any secret with surrounding whitespace; verification refuses longer input.
_MAX_SECRET_INPUT = 4096


def echo_revoked(token_ids: Sequence[str]) -> None:
    """The human line for a cascade's revocations (nothing when there were none)."""
    if token_ids:
        click.echo(f"revoked {len(token_ids)} token(s): {', '.join(token_ids)}")


def token_id_arg(value: str, what: str = "token id") -> str:
    """A token id, refusing a secret given by mistake without repeating it."""
    if looks_like_secret(value):
        raise ValidationError(
            f"that is a token secret, not a {what}: give the token's public id (tok_...)"
        )
    return checked(check_token_id, value)


def _stdin() -> BinaryIO | None:
    """Standard input as bytes (None when the process has none)."""
    stream = sys.stdin
    return None if stream is None else stream.buffer


#: Longer than any path the system can open (PATH_MAX).
_MAX_PATH = 4096


def _load_config(source: str) -> GrantConfig:
    """The grant config at ``source`` ('-': standard input), refusing paths no file can have
    (and that would make a poor error message) and documents nested too deeply to parse."""
    if source != "-" and (len(source) > _MAX_PATH or not source.isprintable()):
        raise ValidationError(
            f"invalid grant config path {shown(source)}: at most {_MAX_PATH} printable characters"
        )
    from tokenledger.cli.grant_files import load_grant_config  # YAML, for this option only

    try:
        return load_grant_config(source, _stdin())
    except RecursionError:
        name = "<stdin>" if source == "-" else source
        raise ValidationError(f"{name}: invalid grant config: nested too deeply") from None


def _when(moment: datetime | None) -> str:
    return format_timestamp(moment) if moment is not None else "never"


@click.group(
    cls=LazyGroup,
    # Suspension (cli/suspension.py).
    lazy_commands={
        "disable": LazyCommand("tokenledger.cli.suspension", "disable_token"),
        "enable": LazyCommand("tokenledger.cli.suspension", "enable_token"),
        # The tokens usable during a window (cli/temporal.py).
        "live": LazyCommand("tokenledger.cli.temporal", "live_tokens_command"),
    },
)
def tokens() -> None:
    """Issue, list, revoke and verify tokens."""


# -- create ------------------------------------------------------------------------------


def _cli_grants(resources: Sequence[str], levels: Sequence[str]) -> list[dict[str, str]]:
    if len(resources) != len(levels):
        raise click.UsageError(
            f"give --resource and --level in pairs ({len(resources)} --resource, "
            f"{len(levels)} --level)"
        )
    return [{"resource": r, "level": lvl} for r, lvl in zip(resources, levels, strict=True)]


# Dyff's words (``python3 -m dyff.api.mgmt tokens create ...``): -t account, and one grant
# given by -f FUNCTIONS -a ACCOUNTS -r RESOURCES, expanded as the config file's Dyff form is.

#: Dyff's token types this command takes: a token for an account (a user or service account).
_DYFF_TOKEN_TYPES = ("account",)


def _check_token_type(token_type: str | None) -> None:
    if token_type is not None and token_type.strip().lower() not in _DYFF_TOKEN_TYPES:
        raise ValidationError(
            f"invalid token type {shown(token_type)}: only 'account' is taken "
            "(-t/--type is Dyff's, and every token here belongs to an account)"
        )


def _comma_list(value: str, option: str) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    if not all(items):
        raise ValidationError(f"invalid {option} {shown(value)}: a comma-separated list of names")
    return items


def _dyff_switch_grants(
    functions: str | None, accounts: str | None, resources: str | None
) -> list[dict[str, str]]:
    """The grant of ``-f FUNCTIONS -a ACCOUNTS -r RESOURCES`` (all three, or none)."""
    if functions is None and accounts is None and resources is None:
        return []
    if functions is None or accounts is None or resources is None:
        raise ValidationError(
            "give -f/--functions, -a/--accounts and -r/--resources together: "
            "Dyff's grant is every resource of every account, at the functions' level"
        )
    from tokenledger.cli.grant_files import MAX_GRANTS, dyff_grants  # YAML-free, but one copy

    listed = {
        option: _comma_list(value, option)
        for option, value in (("-f", functions), ("-a", accounts), ("-r", resources))
    }
    if len(listed["-a"]) * len(listed["-r"]) > MAX_GRANTS:
        raise ValidationError(f"-a and -r: more than {MAX_GRANTS} grants")
    pairs = dyff_grants(listed["-r"], listed["-f"], listed["-a"], "-f/--functions")
    return [pair.as_spec() for pair in pairs]


@dataclass(frozen=True, slots=True)
class _IssueOptions:
    principal: str | None
    resources: tuple[str, ...]
    levels: tuple[str, ...]
    role: str | None
    expires_in: str | None
    expires_at: str | None
    no_expiry: bool
    name: str | None
    parent_id: str | None

    @property
    def expiry_given(self) -> bool:
        return self.expires_in is not None or self.expires_at is not None or self.no_expiry


def _issue_fields(options: _IssueOptions, config: GrantConfig | None) -> dict[str, Any]:
    """The ``IssueToken`` fields: the command line's options, over the config file's values."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    grants = _cli_grants(options.resources, options.levels)
    principal, name, expires_in = options.principal, options.name, options.expires_in
    if config is not None:
        grants.extend(pair.as_spec() for pair in config.grants)
        principal = principal if principal is not None else config.principal
        name = name if name is not None else config.name
        if not options.expiry_given:
            expires_in = config.expires_in
    return {
        "principal": principal,
        "grants": grants,
        "role": options.role,
        "name": name,
        "expires_in": c.parse_duration(expires_in) if expires_in is not None else None,
        "expires_at": (
            parse_timestamp(options.expires_at, "--expires-at")
            if options.expires_at is not None
            else None
        ),
        "no_expiry": options.no_expiry,
        "parent_id": (
            token_id_arg(options.parent_id, "parent token id")
            if options.parent_id is not None
            else None
        ),
    }


def _issued_dict(issued: TokenIssued, result: CommandResult) -> dict[str, Any]:
    return {
        "token_id": issued.token_id,
        "secret": result.secret,
        "principal": issued.principal,
        "kind": issued.kind,
        "name": issued.name,
        "grants": grant_dicts(issued.grants),
        "issued_at": issued.issued_at,
        "expires_at": issued.expires_at,
        "parent_id": issued.parent_id,
        "correlation_id": result.correlation_id,
    }


def _echo_issued(issued: TokenIssued, secret: str) -> None:
    name = f" ({issued.name})" if issued.name else ""
    click.echo(f"issued {issued.kind} token {issued.token_id}{name} for {issued.principal}")
    click.echo(f"  grants:  {grants_text(issued.grants)}")
    click.echo(f"  expires: {_when(issued.expires_at)}")
    if issued.parent_id:
        click.echo(f"  parent:  {issued.parent_id}")
    click.echo("The secret follows. It will not be shown again: store it now.")
    click.echo(secret)


@tokens.command("create")
@click.option(
    "-i",
    "--principal",
    "principals",
    multiple=True,
    help="The user's email, the service account's id, or a Dyff account id (32 hex digits).",
)
@click.option("--resource", "resources", multiple=True, help="A granted resource (repeatable).")
@click.option("--level", "levels", multiple=True, help="The level for each --resource, in order.")
@click.option(
    "--role",
    help="Grant a role's grants (ROLE, ORG:ROLE or ORG.ACCOUNT.ROLE), or Dyff's Admin or "
    "AuditDeveloper.",
)
@click.option(
    "-t", "--type", "token_type", metavar="account", help="Dyff's token type: only 'account'."
)
@click.option(
    "-f", "--functions", metavar="F,...", help="Dyff: the functions granted (consume, ...)."
)
@click.option("-a", "--accounts", metavar="A,...", help="Dyff: the accounts (orgs) granted on.")
@click.option(
    "-r",
    "--resources",
    "dyff_resources",
    metavar="R,...",
    help="Dyff: the resources of each account (paths below it; * for the account itself).",
)
@click.option(
    "-c",
    "--config",
    "config_source",
    metavar="FILE|-",
    help="A YAML or JSON grant config file ('-' reads standard input).",
)
@click.option("--expires-in", help="A lifetime such as 30d, 12h, 1y.")
@click.option("--expires-at", help="An ISO 8601 expiry time (UTC when it names no zone).")
@click.option("--no-expiry", is_flag=True, help="Never expire (refused for admin grants).")
@click.option("--name", help="A name to recognise the token by.")
@click.option("--parent", "parent_id", metavar="TOKEN_ID", help="Derive from this token.")
@click.option(
    "--yes-long-lived",
    is_flag=True,
    help="No warning for an admin token that lives longer than 7 days.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def create_command(
    obj: CliContext,
    principals: tuple[str, ...],
    resources: tuple[str, ...],
    levels: tuple[str, ...],
    role: str | None,
    token_type: str | None,
    functions: str | None,
    accounts: str | None,
    dyff_resources: str | None,
    config_source: str | None,
    expires_in: str | None,
    expires_at: str | None,
    no_expiry: bool,
    name: str | None,
    parent_id: str | None,
    yes_long_lived: bool,
    as_json: bool,
) -> None:
    """Issue a token and print its secret, once.

    Options on the command line win over the config file's principal, name and expiry;
    grants from both are combined. Default lifetime: 30 days for a user, 1 year for a
    service account, 1 hour for a derived token. Dyff's words are taken too: -t account,
    -i ACCOUNT_ID, --role Admin|AuditDeveloper, -f FUNCTIONS -a ACCOUNTS -r RESOURCES.
    """
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    _check_token_type(token_type)
    if len(principals) > 1:
        # -i and --principal are one option: a second one would silently win.
        raise ValidationError("give the token's principal once (-i or --principal)")
    principal = principals[0] if principals else None
    dyff_grants = _dyff_switch_grants(functions, accounts, dyff_resources)
    config = _load_config(config_source) if config_source is not None else None
    options = _IssueOptions(
        principal=principal,
        resources=resources,
        levels=levels,
        role=role,
        expires_in=expires_in,
        expires_at=expires_at,
        no_expiry=no_expiry,
        name=name,
        parent_id=parent_id,
    )
    fields = _issue_fields(options, config)
    fields["grants"] = [*fields["grants"], *dyff_grants]
    command = c.build(c.IssueToken, **fields)
    result = obj.execute(command)
    issued, secret = result.issued, result.secret
    # IssueToken always issues exactly one token, and its secret comes with it.
    assert issued is not None
    assert secret is not None
    warning = None if yes_long_lived else result.outcome.warning
    if warning is not None:
        click.echo(f"tokenledger: warning: {warning}", err=True)
    if as_json:
        echo_json({**_issued_dict(issued, result), **({"warning": warning} if warning else {})})
    else:
        _echo_issued(issued, secret)


# -- list, get ------------------------------------------------------------------------------


def _token_dict(token: TokenView, now: datetime) -> dict[str, Any]:
    return {
        "token_id": token.token_id,
        "principal": token.principal,
        "kind": token.kind,
        "name": token.name,
        "status": token.status(now),
        "grants": grant_dicts(token.grants),
        "issued_at": token.issued_at,
        "expires_at": token.expires_at,
        "parent_id": token.parent_id,
        "revoked_at": token.revoked_at,
        "revoked_reason": token.revoked_reason,
        "disabled_at": token.disabled_at,
        "disabled_cause": token.disabled_cause,
        "last_used": token.last_used_at,
    }


def _token_line(token: TokenView, now: datetime) -> str:
    name = f"  {token.name}" if token.name else ""
    return (
        f"{token.token_id}  {token.status(now):<8}  {token.kind:<8}  "
        f"expires {_when(token.expires_at)}  last used {_when(token.last_used_at)}  "
        f"{grants_text(token.grants)}{name}"
    )


@tokens.command("list")
@click.option(
    "--principal",
    required=True,
    help="The user's email, the service account's id, or a role (ORG:ROLE) for its keys.",
)
@click.option("--all", "include_all", is_flag=True, help="Include revoked and expired tokens.")
@click.option("--at", "at_time", metavar="TIME", help="As they stood at this past time (ISO 8601).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_command(
    obj: CliContext, principal: str, include_all: bool, at_time: str | None, as_json: bool
) -> None:
    """The tokens of a principal (live ones unless --all); never their secrets."""
    ledger = obj.ledger()
    at = parse_timestamp(at_time, "--at") if at_time is not None else None
    found = ledger.tokens_of(
        obj.actor(), token_holder(principal), include_inactive=include_all, at=at
    )
    now = at or ledger.now()
    if as_json:
        echo_json([_token_dict(t, now) for t in found])
        return
    for token in found:
        click.echo(_token_line(token, now))


@tokens.command("get")
@click.argument("token_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def get_command(obj: CliContext, token_id: str, as_json: bool) -> None:
    """One token by its id (never its secret)."""
    ledger = obj.ledger()
    token = ledger.get_token(obj.actor(), token_id_arg(token_id))
    now = ledger.now()
    if as_json:
        echo_json(_token_dict(token, now))
        return
    fields = _token_dict(token, now)
    for key in ("token_id", "principal", "kind", "name", "status", "parent_id"):
        if fields[key] is not None:
            click.echo(f"{key + ':':<15} {fields[key]}")
    click.echo(f"{'grants:':<15} {grants_text(token.grants)}")
    click.echo(f"{'issued_at:':<15} {_when(token.issued_at)}")
    click.echo(f"{'expires_at:':<15} {_when(token.expires_at)}")
    if token.revoked_at is not None:
        click.echo(f"{'revoked_at:':<15} {_when(token.revoked_at)} ({token.revoked_reason})")
    if token.disabled_at is not None:
        cause = f" (with {token.disabled_cause})" if token.disabled_cause else ""
        click.echo(f"{'disabled_at:':<15} {_when(token.disabled_at)}{cause}")
    click.echo(f"{'last_used:':<15} {_when(token.last_used_at)}")


@tokens.command("unused")
@click.option(
    "--for",
    "unused_for",
    required=True,
    metavar="DURATION",
    help="Unused for at least this long (e.g. 90d, 12w, 1y); never used counts from issue.",
)
@click.option("--org", help="Only tokens reaching this org.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def unused_command(obj: CliContext, unused_for: str, org: str | None, as_json: bool) -> None:
    """Live tokens nobody has used for a while (those you may see); never their secrets."""
    from tokenledger.domain import commands as c  # the duration's rule

    period = c.parse_duration(unused_for)
    ledger = obj.ledger()
    found = ledger.unused_tokens(obj.actor(), period, org=org)
    now = ledger.now()
    if as_json:
        echo_json([_token_dict(t, now) for t in found])
        return
    for token in found:
        click.echo(f"{token.principal}  {_token_line(token, now)}")


# -- revoke ---------------------------------------------------------------------------------

_REVOKE_USAGE = (
    "use 'revoke TOKEN_ID', 'revoke --all --principal P' or 'revoke --where KEY=VALUE ...'"
)


def _revoke_command(
    token_id: str | None, revoke_all: bool, principal: str | None, reason: str | None
) -> c.RevokeToken | c.RevokeAllTokens:
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    if revoke_all:
        if token_id is not None or principal is None:
            raise click.UsageError(_REVOKE_USAGE)
        return c.build(c.RevokeAllTokens, principal=principal, reason=reason)
    if token_id is None or principal is not None:
        raise click.UsageError(_REVOKE_USAGE)
    return c.build(c.RevokeToken, token_id=token_id_arg(token_id), reason=reason)


def _where_fields(pairs: Sequence[str]) -> dict[str, Any]:
    """``--where KEY=VALUE`` options as the fields of ``TokenCriteria`` (``issued-before``
    is ``issued_before``; a time is read as every time option is)."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    keys = [name.replace("_", "-") for name in c.TokenCriteria.model_fields]
    fields: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lower()
        if not sep or key not in keys:
            raise click.UsageError(
                f"--where takes KEY=VALUE with KEY one of {', '.join(keys)} (got {shown(pair)})"
            )
        field = key.replace("-", "_")
        if field in fields:
            raise click.UsageError(f"give --where {key}=... once")
        fields[field] = (
            parse_timestamp(value, "issued-before") if field == "issued_before" else value
        )
    return fields


def _selection_line(token: TokenView) -> str:
    name = f"  {token.name}" if token.name else ""
    return f"{token.token_id}  {token.principal}  expires {_when(token.expires_at)}{name}"


def revoke_where(
    obj: CliContext, pairs: Sequence[str], reason: str | None, yes: bool, as_json: bool
) -> None:
    """Preview (without ``yes``) or carry out a revocation by filter (``--where`` pairs): the
    one preview and confirmation of every bulk revocation."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.RevokeTokensWhere, where=_where_fields(pairs), reason=reason)
    where = command.where.model_dump(mode="json", exclude_none=True)
    ledger = obj.ledger()
    if not yes and not obj.dry_run:
        matched = ledger.preview_revocation(obj.actor(), command.where)
        now = ledger.now()
        if as_json:
            tokens_json = [_token_dict(t, now) for t in matched]
            echo_json(
                {"where": where, "dry_run": True, "count": len(matched), "tokens": tokens_json}
            )
            return
        click.echo(
            f"{len(matched)} token(s) match; nothing was revoked "
            "(add --yes to revoke them and the tokens derived from them):"
        )
        for token in matched:
            click.echo(f"  {_selection_line(token)}")
        return
    result = obj.execute(command)
    if as_json:
        echo_json(
            {"where": where, "revoked": result.revoked, "correlation_id": result.correlation_id}
        )
    else:
        echo_revoked(result.revoked)


@tokens.command("revoke")
@click.argument("token_id", required=False)
@click.option("--all", "revoke_all", is_flag=True, help="Revoke every live token of --principal.")
@click.option("--principal", help="With --all: whose tokens.")
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="KEY=VALUE",
    help="Select live tokens by principal, org, resource (a grant on it or below), "
    "issued-before (a time), unused-for (a duration such as 90d), name (a pattern: * and "
    "?) or ids (token ids separated by commas); repeatable, all must hold. "
    "Lists them; revokes only with --yes.",
)
@click.option("--yes", is_flag=True, help="With --where: revoke what it selects.")
@click.option("--reason", help="Why (recorded in the log).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def revoke_command(
    obj: CliContext,
    token_id: str | None,
    revoke_all: bool,
    principal: str | None,
    where: tuple[str, ...],
    yes: bool,
    reason: str | None,
    as_json: bool,
) -> None:
    """Revoke TOKEN_ID, every token of a principal, or every token --where selects; tokens
    derived from them go too."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    if where:
        if token_id is not None or revoke_all or principal is not None:
            raise click.UsageError(_REVOKE_USAGE)
        revoke_where(obj, where, reason, yes, as_json)
        return
    if yes:
        raise click.UsageError("--yes goes with --where")
    command = _revoke_command(token_id, revoke_all, principal, reason)
    result = obj.execute(command)
    if as_json:
        subject: dict[str, Any] = (
            {"token_id": command.token_id}
            if isinstance(command, c.RevokeToken)
            else {"principal": command.principal}
        )
        echo_json({**subject, "revoked": result.revoked, "correlation_id": result.correlation_id})
    elif result.revoked:
        echo_revoked(result.revoked)
    else:
        click.echo("no live tokens to revoke")


# -- expiring -------------------------------------------------------------------------------


@tokens.command("expiring")
@click.option("--within", required=True, metavar="DURATION", help="A window such as 14d, 12h.")
@click.option("--org", help="Only tokens reaching this org.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def expiring_command(obj: CliContext, within: str, org: str | None, as_json: bool) -> None:
    """Live tokens that expire within DURATION from now, soonest first (those you may see)."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    window = c.parse_duration(within)
    ledger = obj.ledger()
    found = ledger.expiring_tokens(obj.actor(), window, org=org)
    now = ledger.now()
    if as_json:
        echo_json([_token_dict(t, now) for t in found])
        return
    if not found:
        click.echo(f"no live token expires within {within.strip()}")
    for token in found:
        click.echo(_selection_line(token))


# -- verify ---------------------------------------------------------------------------------


def _presented_secret() -> str:
    """The secret piped on standard input, else ``TOKENLEDGER_TOKEN``."""
    stdin = _stdin()
    if stdin is not None and not stdin.isatty():
        piped = stdin.read(_MAX_SECRET_INPUT).decode("utf-8", errors="replace").strip()
        if piped:
            return piped
    secret = os.environ.get(TOKEN_ENV, "").strip()
    if not secret:
        raise ValidationError(
            f"no token to verify: pipe its secret on standard input or set {TOKEN_ENV}"
        )
    return secret


def _echo_verification(answer: Verification) -> None:
    if not answer.active:
        click.echo(f"inactive: {answer.reason}")
        return
    click.echo(f"active: token {answer.token_id} of {answer.sub} ({answer.token_type})")
    click.echo(f"  scope:   {answer.scope or '(nothing)'}")
    click.echo(f"  expires: {_epoch(answer.exp)}")
    if answer.resource is not None:
        verdict = "allowed" if answer.allowed else "not allowed"
        click.echo(f"{verdict}: {answer.level} on {answer.resource}")


def _epoch(value: int | None) -> str:
    return _when(datetime.fromtimestamp(value, UTC) if value is not None else None)


@tokens.command("verify")
@click.option("--resource", help="Ask whether the token allows --level on this resource.")
@click.option("--level", help="The level to ask for (default read).")
@click.option(
    "--at", "at_time", metavar="TIME", help="Answer as of this past time (ISO 8601), from the log."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def verify_command(
    ctx: click.Context,
    resource: str | None,
    level: str | None,
    at_time: str | None,
    as_json: bool,
) -> None:
    """Is a token active (and allowed on --resource)? Exit 0 only when it is.

    The secret is read from standard input when something is piped there, else from
    TOKENLEDGER_TOKEN. The answer uses RFC 7662 (token introspection) names.
    """
    if level is not None and resource is None:
        raise click.UsageError("--level needs --resource")
    wanted = parse_level(level) if level is not None else None
    obj: CliContext = ctx.obj
    secret = _presented_secret()
    if at_time is None:
        answer = obj.ledger().verify(secret, resource=resource, level=wanted)
        document = msgspec.to_builtins(answer)
    else:
        at = parse_timestamp(at_time, "--at")
        answer, position = obj.ledger().verify_at(secret, at, resource=resource, level=wanted)
        document = {
            **msgspec.to_builtins(answer),
            "at": format_timestamp(at),
            "as_of_position": position,
        }
    if as_json:
        echo_json(document)
    else:
        if at_time is not None:
            click.echo(f"as of {document['at']} (log position {document['as_of_position']}):")
        _echo_verification(answer)
    if not (answer.active and answer.allowed):
        ctx.exit(1)


# Rotation lives in its own module (cli/rotation.py), which uses the printing above.
from tokenledger.cli.rotation import rotate_token_command  # noqa: E402

tokens.add_command(rotate_token_command)
