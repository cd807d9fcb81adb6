"""How a principal is named to other systems, as Descartes Labs' clients name theirs: a
stable ``namespace`` (the SHA-1 hex of the principal's id) and the ACL subjects an access
decision elsewhere may match (``user:<id>`` or ``role:<org:role>``, ``org:<org>``,
``group:<org:role>``). Pure: the
server puts them in ``whoami`` and in access tokens, the client computes the same."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from tokenledger.domain.model import is_role_principal

__all__ = ["acl_subjects", "namespace_of"]


def namespace_of(principal: str) -> str:
    """A stable id of the principal that does not spell its email: SHA-1 hex of its id."""
    return hashlib.sha1(principal.encode(), usedforsecurity=False).hexdigest()


def acl_subjects(principal: str, org: str | None, groups: Iterable[str]) -> list[str]:
    """``user:<principal>`` (``role:<org:role>`` for a role's key), then ``org:<org>`` when
    there is one, then ``group:<g>`` each."""
    kind = "role" if is_role_principal(principal) else "user"
    subjects = [f"{kind}:{principal}"]
    if org:
        subjects.append(f"org:{org}")
    subjects.extend(f"group:{group}" for group in groups)
    return subjects
