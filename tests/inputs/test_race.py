"""Kind 22: two processes opening the same new run folder at once never fail with "UNIQUE
constraint failed", "database is locked" or a half-made schema: both succeed (the same
setup), or one is refused cleanly as another setup; nothing is mixed."""

from __future__ import annotations

import multiprocessing
import sqlite3

from .conftest import cli_process
from .race_worker import open_and_run

ROUNDS = 21


def test_two_processes_on_the_same_new_folders(tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(2), context.Queue()
    workers = [context.Process(target=open_and_run, args=(barrier, str(tmp_path), ROUNDS, w, queue))
               for w in range(2)]
    for worker in workers:
        worker.start()
    results = dict(queue.get(timeout=600) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    for round_ in range(ROUNDS):
        outcomes = [results[w][round_] for w in range(2)]
        kinds = sorted(kind for _, kind, _ in outcomes)
        assert "crash" not in kinds, outcomes
        if round_ % 3 == 0:
            assert kinds == ["ok", "ok"], outcomes
        else:
            assert kinds == ["ok", "refused"], outcomes
            assert "another setup" in next(m for _, k, m in outcomes if k == "refused")
        with sqlite3.connect(tmp_path / f"r{round_}" / "results.sqlite") as db:
            campaigns = db.execute("SELECT name FROM campaigns").fetchall()
            trials = db.execute("SELECT count(*) FROM trials").fetchone()[0]
        db.close()
        assert len(campaigns) == 1 and trials == 2, (round_, campaigns, trials)


def test_two_profile_commands_into_one_new_folder(tmp_path, data_npz):
    """Both succeed (the same setup), saving the same result files at the same time."""
    out = tmp_path / "o"
    processes = [cli_process("profile", "--data", f"npz:{data_npz}", "--images", "20",
                             "--quiet", "--trials", "1", "--sigma", "0,1", "--layers",
                             "fc_layers.2", "--out", out) for _ in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert "Traceback" not in err and "UNIQUE" not in err and "locked" not in err, err
    assert (out / "report.html").is_file()
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    with sqlite3.connect(out / "results.sqlite") as db:
        assert db.execute("SELECT count(*) FROM trials").fetchone()[0] == 2
    db.close()
