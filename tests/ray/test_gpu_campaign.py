"""Campaigns on a CUDA device (marked `gpu`; skipped without one).

What may differ from the CPU: float rounding of the kernels (cuDNN's convolution algorithms,
TF32 for convolutions, on by default in PyTorch on Ampere and later), hence a top-1 that
flips on a near-tie; and the noise itself: a trial's generator lives on the engine's device,
and CUDA's Philox generator draws other numbers than the CPU's Mersenne Twister from the
same seed. What may not: the seeds, the trial plans and what is stored. So trials that draw
nothing (stuck-at on whole channels, std 0) are compared with the CPU's within float
tolerance, and noisy trials with the same campaign on the GPU through the Ray engine.
"""

from __future__ import annotations

import pytest
import torch
from raykit import records

import approxmap as am

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]

RUN = {"trials": 3, "batch_size": 40, "seed": 5}


def deterministic() -> list[am.Scenario]:
    """Trials whose errors draw no random numbers: their records depend on kernels only."""
    return [am.Scenario.single(am.Site("conv_layers.3", channels=(0, 1, 2, 3)), am.StuckAt()),
            am.Scenario.single(am.Site("fc_layers.0", channels=tuple(range(0, 256, 2))),
                               am.StuckAt()),
            am.Scenario.single(am.Site("conv_layers.6"), am.Gaussian(std=0.0))]


def assert_close(got: dict, expected: dict, flips: int) -> None:
    """Equal trials up to `flips` changed predictions and float rounding of the loss."""
    assert sorted(got) == sorted(expected)
    for key, record in expected.items():
        a, b = got[key].counts, record.counts
        assert a.n == b.n and a.nonfinite == b.nonfinite, key
        for field in ("correct1", "correct5", "agree", "agree5"):
            assert abs(getattr(a, field) - getattr(b, field)) <= flips, (key, field, a, b)
        assert a.loss_sum == pytest.approx(b.loss_sum, rel=2e-3, abs=1e-3), key


def test_a_campaign_on_cuda_equals_the_cpus_within_float_tolerance(mnist_model, mnist_small):
    cpu = am.Run(engine=am.create_engine("local", device="cpu", threads=1), **RUN)
    gpu = am.Run(engine=am.create_engine("local", device="cuda"), **RUN)
    clean_cpu = am.Campaign(mnist_model, mnist_small, run=cpu).clean_accuracy()
    clean_gpu = am.Campaign(mnist_model, mnist_small, run=gpu).clean_accuracy()
    assert abs(clean_cpu - clean_gpu) <= 1 / len(mnist_small)
    assert_close(records(mnist_model, mnist_small, gpu, deterministic()),
                 records(mnist_model, mnist_small, cpu, deterministic()), flips=1)
    # noisy trials: other draws on the GPU, the same seeds, plans and stored trials
    noisy = [am.Scenario.single(am.Site("conv_layers.3"), am.Gaussian(std=0.5))]
    on_gpu = records(mnist_model, mnist_small, gpu, noisy, name="noisy")
    on_cpu = records(mnist_model, mnist_small, cpu, noisy, name="noisy")
    assert on_gpu.keys() == on_cpu.keys()
    assert [r.seed for r in on_gpu.values()] == [r.seed for r in on_cpu.values()]


def test_ray_workers_on_cuda_give_the_local_cuda_records(ray_cluster, mnist_model, mnist_small):
    if not ray_cluster.cluster_resources().get("GPU"):
        pytest.skip("the Ray session cluster sees no GPU")
    noisy = [am.Scenario.single(am.Site(layer), am.Gaussian(std=0.5))
             for layer in ("conv_layers.3", "fc_layers.0")]
    local = am.Run(engine=am.create_engine("local", device="cuda", threads=1), **RUN)
    expected = records(mnist_model, mnist_small, local, noisy)
    with am.RayEngine(workers=1, device="cuda",
                      rebuild=am.ModelRecipe.from_spec("mnist-cnn")) as engine:
        got = records(mnist_model, mnist_small, am.Run(engine=engine, **RUN), noisy)
    assert_close(got, expected, flips=1)  # the same generator kind: the same draws
