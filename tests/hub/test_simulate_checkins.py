"""The simulator's night check-ins: plans `vaka checkin plan` accepts, cameras silent at some slots, and the truth."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from hub.checkins.plan import load_plans
from hub.model import DecisionAction
from hub.simulation import SimConfig, Simulation, add_arguments, main
from hub.simulation.checkins import write_checkin_plans
from tests.hub.test_simulate import NO_INCIDENTS, START, busy_rates, parsed, replay_through_default_pack

CAMERA_SUPERVISION_S = 1200


def checkin_sim(seed: int, **kw: object) -> Simulation:
    config = {"start": START, "nights": 2, "residents": 12, "seed": seed, "checkin_share": 1.0,
              "camera_failure_rate": 0.3, "rates": busy_rates(4)} | kw  # fmt: skip
    return Simulation(SimConfig.model_validate(config))


def test_a_share_of_residents_gets_a_plan_the_checkin_command_accepts(tmp_path: Path) -> None:
    sim = Simulation(SimConfig(start=START, residents=40, seed=4, checkin_share=0.5, rates=NO_INCIDENTS))
    path = tmp_path / "plans.yaml"
    write_checkin_plans(sim.checkin_plans(), path)
    plans = load_plans(path)
    assert 10 <= len(plans) <= 30  # about half of 40
    site = sim.inventory().sites[0]
    cameras = {d.resident: d.id for d in site.devices if d.kind == "camera"}
    for plan in plans:
        assert plan.camera == cameras[plan.resident]
        assert [(f"{s.at:%H:%M}", s.mode) for s in plan.slots] == [
            ("23:00", "camera"), ("02:00", "camera"), ("05:00", "physical"),
        ]  # fmt: skip
        assert plan.travel_minutes > 0
    # deterministic by seed; another seed picks other residents
    again = Simulation(SimConfig(start=START, residents=40, seed=4, checkin_share=0.5, rates=NO_INCIDENTS))
    assert again.checkin_plans() == sim.checkin_plans()
    assert again.checkin_truth() == sim.checkin_truth()
    other = Simulation(SimConfig(start=START, residents=40, seed=5, checkin_share=0.5, rates=NO_INCIDENTS))
    assert other.checkin_plans() != sim.checkin_plans()


def test_without_a_checkin_share_there_are_no_plans_and_the_run_is_unchanged() -> None:
    plain = Simulation(SimConfig(start=START, hours=8, residents=6, seed=9, rates=busy_rates(5)))
    assert plain.checkin_plans() == {"plans": []}
    assert plain.checkin_truth() == []
    # a failure rate without residents on a plan changes nothing either
    other = Simulation(
        SimConfig(start=START, hours=8, residents=6, seed=9, rates=busy_rates(5), camera_failure_rate=1.0)
    )
    assert other.truth() == plain.truth()
    assert list(other.iter_messages()) == list(plain.iter_messages())


def test_a_camera_is_silent_exactly_at_the_slots_the_truth_makes_physical() -> None:
    sim = checkin_sim(3)
    truth = sim.checkin_truth()
    assert len(truth) == 12 * 3 * 2  # three slots a night, two nights, everyone on a plan
    physical = [t for t in truth if t["reason"] == "camera_down"]
    assert 3 <= len(physical) <= 25  # about 30 % of 48 camera slots
    assert all(t["expect"] == "physical" for t in physical)
    assert sum(t["expect"] == "physical" and t["reason"] == "" for t in truth) == 12 * 2  # the 05:00 visits
    cameras = {r.id: r.devices["camera"].id for r in sim.residents}
    seen: dict[str, list[float]] = defaultdict(list)
    offline: dict[str, list[float]] = defaultdict(list)
    for t, dev_id, channel, body in parsed(list(sim.iter_messages())):
        if channel == "status":
            if body["state"] == "offline":
                offline[dev_id].append(t)
        else:
            seen[dev_id].append(t)
    incidents = sim.truth()
    for line in truth:
        if line["expect"] == "physical" and not line["reason"]:
            continue
        camera = cameras[line["resident_id"]]
        w0 = datetime.fromisoformat(line["window_start"]).timestamp()
        last = max(t for t in seen[camera] if t < w0)
        if line["reason"] == "camera_down":  # silent long enough that device_silent is open when the window opens
            assert w0 - last > CAMERA_SUPERVISION_S, line
            silent = [
                i for i in incidents
                if i["incident"] == "device_silent" and i["device_id"] == camera
                and datetime.fromisoformat(str(i["must_raise_by"])).timestamp() < w0
                and datetime.fromisoformat(str(i["at"])).timestamp() >= last
            ]  # fmt: skip
            assert silent, line
        else:  # reporting, and not offline, in the hour before the window opens
            assert w0 - last < CAMERA_SUPERVISION_S, line
            assert not any(w0 - 3600 <= t <= w0 for t in offline[camera]), line


def test_the_default_rule_pack_still_raises_what_the_truth_expects_with_checkins() -> None:
    sim = checkin_sim(8, nights=1, residents=8, camera_failure_rate=0.5)
    truth = sim.truth()
    assert any(line["incident"] == "device_silent" for line in truth)
    raised = [d for d in replay_through_default_pack(sim) if d.action in (DecisionAction.RAISE, DecisionAction.UPDATE)]
    missed = [
        line
        for line in truth
        if line["expected"]
        and not any(
            d.rule_id == line["expected"]
            and (d.resident_id == line["resident_id"] or d.device_id == line["device_id"])
            and datetime.fromisoformat(str(line["at"])) - timedelta(seconds=1)
            <= d.at
            <= datetime.fromisoformat(str(line["must_raise_by"]))
            for d in raised
        )
    ]
    assert missed == []
    silent_cameras = [d for d in raised if d.rule_id == "device_silent" and str(d.device_id).endswith("-cam")]
    down = [t for t in sim.checkin_truth() if t["reason"] == "camera_down"]
    assert len(silent_cameras) >= len(down) > 0


async def test_cli_writes_checkin_plans_and_truth(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--site", "ci-test", "--residents", "6", "--nights", "1", "--start", "2026-11-26T20:00",
            "--checkin-share", "1", "--camera-failure-rate", "0.5", "--checkin-plans", str(tmp_path / "plans.yaml"),
            "--checkin-truth", str(tmp_path / "checkins.jsonl"), "--write-only", "--quiet",
        ]
    )  # fmt: skip
    assert await main(args) == 0
    assert len(load_plans(tmp_path / "plans.yaml")) == 6
    lines = [json.loads(line) for line in (tmp_path / "checkins.jsonl").read_text().splitlines()]
    assert len(lines) == 18
    assert {line["expect"] for line in lines} == {"camera", "physical"}
    assert lines[0]["checkin"] == "ci-r-0001-20261126-2300"
    bad = parser.parse_args(["--checkin-share", "2", "--write-only"])
    assert await main(bad) == 2
