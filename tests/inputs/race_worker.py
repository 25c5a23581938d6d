"""A process of the race test: opens the same new run folders as its twin, round by round
(both wait at a barrier, then go), and reports what happened in each round."""

from __future__ import annotations

import os


def open_and_run(barrier, root: str, rounds: int, worker: int, queue) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    from torch import nn

    import approxmap as am
    from approxmap.report.folder import RunFolder, identity_of

    torch.manual_seed(0)
    same = nn.Sequential(nn.Flatten(), nn.Linear(16, 4)).eval()
    torch.manual_seed(1 + worker)
    own = nn.Sequential(nn.Flatten(), nn.Linear(16, 4)).eval()
    gen = torch.Generator().manual_seed(1)
    data = am.EvalData(torch.rand(8, 1, 4, 4, generator=gen), torch.arange(8) % 4, "toy")
    outcomes = []
    for round_ in range(rounds):
        # round % 3: 0 the same setup, 1 another seed (another campaign setup), 2 another
        # model (another folder identity) under another campaign name
        model = own if round_ % 3 == 2 else same
        seed = worker if round_ % 3 == 1 else 0
        name = f"c{worker}" if round_ % 3 == 2 else "profile"
        barrier.wait(timeout=120)
        try:
            with RunFolder(f"{root}/r{round_}", identity_of(model, data, "toy")) as folder:
                run = folder.run(trials=2, seed=seed, progress=False)
                scenario = am.Scenario.single(am.Site("1"), am.Gaussian(std=0.5))
                am.Campaign(model, data, [scenario], run, name=name).run()
            outcomes.append((round_, "ok", ""))
        except am.ApproxmapError as exc:
            outcomes.append((round_, "refused", str(exc)))
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            outcomes.append((round_, "crash", f"{type(exc).__name__}: {exc}"))
    queue.put((worker, outcomes))
