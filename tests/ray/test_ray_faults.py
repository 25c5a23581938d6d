"""Faults: a worker killed in the middle of a group (the group runs again, nothing is lost or
stored twice), the driver interrupted or killed (the same command resumes to the
uninterrupted result), and a campaign spread over a two-node cluster."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter

import pytest
from raykit import assert_same_records, local, records, require_ray, scenarios

import approxmap as am
from approxmap.cli import main
from approxmap.engine.local import pinned_threads

require_ray()

RUN = {"trials": 8, "batch_size": 40, "seed": 1}


def test_a_worker_killed_mid_group_is_restarted_and_its_group_runs_again(
        make_engine, mnist_model, mnist_full, tmp_path):
    data = mnist_full.subset(160)
    sc = scenarios(sigmas=(0.5, 1.0))  # 3 layers x 2 sigmas x 8 trials, in groups of 4
    expected = records(mnist_model, data, local(**RUN), sc)
    engine = make_engine(workers=2, group_size=4)
    store = am.Store(tmp_path / "results.sqlite")
    campaign = am.Campaign(mnist_model, data, sc, am.Run(engine=engine, store=store, **RUN))
    delivered: Counter = Counter()
    killed: list[int] = []
    add_trials = store.add_trials

    def add_and_kill(name, batch):
        delivered.update((r.scenario, r.trial) for r in batch)
        if not killed:  # both workers hold groups now: kill one in the middle of its group
            pid = next(iter(engine.worker_processes().values()))[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        add_trials(name, batch)

    store.add_trials = add_and_kill
    campaign.run()
    assert killed
    assert set(delivered.values()) == {1} and len(delivered) == len(expected)  # none twice
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == len(expected)
    assert_same_records(campaign.records(), expected)
    pids = {pid for pid, _ in engine.worker_processes().values()}
    assert killed[0] not in pids and len(pids) == 2  # the killed worker was restarted


# -- the driver: Ctrl-C or kill, then the same command ---------------------------------------

ARGS = ["profile", "--images", "150", "--trials", "8", "--sigma", "0.5,1", "--batch-size", "50",
        "--quiet"]
TOTAL = 5 * 2 * 8  # layers x sigmas x trials


def comparable(out):
    profile = json.loads((out / "profile.json").read_text())
    for key in ("created", "command"):
        profile.pop(key)
    return profile


def stored_trials(path) -> int:
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="module")
def local_profile(tmp_path_factory):
    """The local engine's result, with one torch thread as on the Ray workers."""
    out = tmp_path_factory.mktemp("local")
    with pinned_threads(1):
        assert main([*ARGS, "--out", str(out)]) == 0
    return comparable(out)


def interrupt(command, out, sig, at_least):
    """Start `command`, send `sig` once `at_least` trials are stored; its return code and
    stderr."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while stored_trials(out / "results.sqlite") < at_least and proc.poll() is None:
        assert time.monotonic() < deadline, "no trial was stored in time"
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, "the campaign finished before it could be interrupted"
    return proc.returncode, err.decode()


@pytest.mark.slow
def test_an_interrupted_or_killed_driver_resumes_to_the_local_result(ray_cluster, local_profile,
                                                                     tmp_path):
    """The CLI on the session's cluster (--address): Ctrl-C after some groups are stored,
    the same command killed (SIGKILL) after more, then the same command finishes the rest;
    nothing is stored twice and the result is the local engine's."""
    address = ray_cluster.get_runtime_context().gcs_address
    out = tmp_path / "ray"
    command = [sys.executable, "-m", "approxmap", *ARGS, "--out", str(out), "--engine", "ray",
               "--address", address]
    code, err = interrupt(command, out, signal.SIGINT, 1)
    assert code == 130 and "Traceback" not in err, err[-2000:]
    assert "the same command resumes" in err
    first = stored_trials(out / "results.sqlite")
    assert 1 <= first < TOTAL
    interrupt(command, out, signal.SIGKILL, first + 1)
    assert first < stored_trials(out / "results.sqlite") < TOTAL

    finished = subprocess.run(command, capture_output=True, timeout=300)
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]
    assert stored_trials(out / "results.sqlite") == TOTAL
    assert comparable(out) == local_profile


# -- two nodes ---------------------------------------------------------------------------------

TWO_NODES = textwrap.dedent("""
    import ray
    from ray.cluster_utils import Cluster
    import approxmap as am

    def run(cluster):
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, logging_level="WARNING")
        model = am.create_model("mnist-cnn")
        data = am.create_dataset("mnist5k").subset(60)
        sc = [am.Scenario.single(am.Site(layer), am.Gaussian(std=0.5))
              for layer in ("conv_layers.3", "fc_layers.0")]
        local = am.Run(engine=am.create_engine("local", threads=1), trials=6, batch_size=25)
        expected = am.Campaign(model, data, sc, local)
        expected.run()
        with am.RayEngine(rebuild=am.ModelRecipe.from_spec("mnist-cnn"), group_size=2) as engine:
            engine.start()  # both workers, one per node
            spread = am.Campaign(model, data, sc, am.Run(engine=engine, trials=6, batch_size=25))
            spread.run()
            nodes = {node for _, node in engine.worker_processes().values()}
        a, b = expected.records(), spread.records()
        assert a.keys() == b.keys() and all(a[k].same_result(b[k]) for k in a)
        print("workers on", len(nodes), "nodes")

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                                                            "include_dashboard": False})
    try:
        run(cluster)
    finally:
        ray.shutdown()
        cluster.shutdown()
""")


@pytest.mark.slow
def test_a_two_node_cluster_gives_the_local_records(ray_cluster):
    """A separate process (this one drives the session's cluster), with its own Ray
    directory: the Cluster records itself as this machine's current one there."""
    with tempfile.TemporaryDirectory(prefix="ray") as tmp:  # short: Ray's socket paths
        done = subprocess.run([sys.executable, "-c", TWO_NODES], capture_output=True,
                              text=True, timeout=240, env={**os.environ, "RAY_TMPDIR": tmp})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "workers on 2 nodes" in done.stdout
