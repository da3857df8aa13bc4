"""The HA settings refuse what would leave a site without a lease or a hub without its check (docs/ha.md)."""

from __future__ import annotations

import pytest

from hub.settings import HaSettings, Settings


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ({"lease_s": 10.0, "renew_s": 6.0}, r"at most half of ha\.lease_s"),
        ({"sites": ["a"], "prefer": ["b"]}, r"ha\.prefer names a site"),
    ],
)
def test_a_lease_a_renewal_cannot_keep_or_a_preference_outside_the_sites_is_refused(
    given: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        HaSettings(enabled=True, **given)  # type: ignore[arg-type]


def test_the_ha_profile_is_off_by_default_and_refuses_a_simulated_clock() -> None:
    assert Settings().ha.enabled is False
    with pytest.raises(ValueError, match=r"clock\.mode = wall"):
        Settings(ha={"enabled": True}, clock={"mode": "simulated"})  # type: ignore[arg-type]
