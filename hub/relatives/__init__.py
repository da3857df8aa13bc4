"""Relatives: the residents' consents, relative accounts, what a relative may see, the access log and the
resident's own rights (export, erasure). The web pages live in `hub.web.relatives`, the commands in
`hub.relatives.cli`. See docs/relatives.md and docs/privacy.md.
"""

from __future__ import annotations

from hub.model import VakaError


class RelativesError(VakaError):
    """A consent, relative account or resident-rights request cannot be carried out as asked."""
