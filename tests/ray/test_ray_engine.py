"""The Ray engine computes the local engine's records bit for bit, however many workers; the
model travels as a recipe plus its weights (or, on request, as the object), never silently
as something else."""

from __future__ import annotations

import copy
import textwrap

import pytest
import torch
from raykit import assert_same_records, local, records, require_ray, scenarios
from torch import nn

import approxmap as am
from approxmap.engine.base import TrialPlan
from approxmap.engine.ray import GROUPS_PER_WORKER, MAX_GROUP, RayEngine
from approxmap.zoo.models import load_model

require_ray()

# 100 images: batches of 45, 45 and 10 (a batch MKL's GEMM rounds by thread count, hence the
# reference's one thread, as on the workers)
RUN = {"trials": 4, "batch_size": 45, "seed": 3}


@pytest.fixture(scope="module")
def local_records(mnist_model, ray_data):
    return records(mnist_model, ray_data, local(**RUN))


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_records_equal_the_local_engines_bit_for_bit(make_engine, mnist_model, ray_data,
                                                     local_records, workers, capsys):
    # 3 workers on the session's 2 CPUs: half a CPU each
    engine = make_engine(workers=workers, worker_cpus=0.5 if workers == 3 else 1.0).start()
    got = records(mnist_model, ray_data, am.Run(engine=engine, progress=True, **RUN))
    assert_same_records(got, local_records)
    assert len(engine.worker_processes()) == workers  # every worker took part
    assert "campaign" in capsys.readouterr().err  # the driver's progress bar


def test_a_users_file_model_travels_as_its_text_and_weights(make_engine, tmp_path, ray_data):
    """`path/net.py:build` with --output-key: workers execute the file's text (no copy of
    the file, no pickled code) and load the driver's weights, here changed after loading."""
    net = tmp_path / "net.py"
    net.write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 4, 3, padding=1)
                self.fc = nn.Linear(4 * 14 * 14, 10)

            def forward(self, x):
                h = torch.relu(nn.functional.max_pool2d(self.conv(x), 2))
                return self.fc(h.flatten(1)), h

        def build():
            torch.manual_seed(0)
            return Net()
        """))
    spec = f"{net}:build"
    model = am.logits_of(load_model(spec)[0], 0)
    with torch.no_grad():
        model.fc.weight.mul_(3.0)  # only the weights given to the engine make these records
    sc = scenarios(("conv", "fc"), (0.5,))
    expected = records(model, ray_data, local(**RUN), sc)
    recipe = am.ModelRecipe.from_spec(spec, output_key=0)  # reads the file's text now
    net.unlink()  # the workers never read the file
    engine = make_engine(workers=2, rebuild=recipe)
    assert_same_records(records(model, ray_data, am.Run(engine=engine, **RUN), sc), expected)
    # streamed data (an iterable of batches) travels as its batches
    batches = am.EvalData.from_batches([(x, y) for x, y in ray_data.batches(30)])
    expected = records(model, batches, local(**RUN), sc, name="streamed")
    got = records(model, batches, am.Run(engine=engine, **RUN), sc, name="streamed")
    assert_same_records(got, expected)


def test_pickle_ships_the_object_with_its_hooks_only_when_asked(make_engine, mnist_model,
                                                                 ray_data):
    class Halved(nn.Module):  # a class defined here: no spec can rebuild it
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    model = Halved(copy.deepcopy(mnist_model))  # the session's model stays without hooks
    model.inner.fc_layers[0].register_forward_hook(lambda m, i, o: o * 0.5)
    sc = scenarios(("inner.conv_layers.3",), (0.5,))
    expected = records(model, ray_data, local(**RUN), sc)
    engine = make_engine(workers=1, rebuild="pickle")
    assert_same_records(records(model, ray_data, am.Run(engine=engine, **RUN), sc), expected)

    hooked = am.create_model("mnist-cnn")
    hooked.fc_layers[0].register_forward_hook(lambda m, i, o: o * 0.5)
    engine = make_engine(workers=1)  # the mnist-cnn recipe cannot rebuild the hook
    with pytest.raises(am.ApproxmapError, match="computes other outputs"):
        records(hooked, ray_data, am.Run(engine=engine, **RUN), scenarios())
    lenet = make_engine(workers=1, rebuild=am.ModelRecipe.from_spec("lenet5"))
    with pytest.raises(am.ApproxmapError, match="other parameters"):
        records(mnist_model, ray_data, am.Run(engine=lenet, **RUN), scenarios())


def test_without_a_rebuild_choice_the_engine_says_what_to_pass(make_engine, mnist_model,
                                                               ray_data):
    engine = make_engine(rebuild=None)
    with pytest.raises(am.ApproxmapError, match=r"rebuild=ModelRecipe.from_spec.*rebuild='pickle'"):
        records(mnist_model, ray_data, am.Run(engine=engine, **RUN), scenarios())


def test_groups_keep_the_local_cuts_and_feed_every_worker():
    plans = [TrialPlan(s, t, t) for s in scenarios() for t in range(20)]
    engine = RayEngine.__new__(RayEngine)
    engine.group_size = None
    units = engine.groups(plans, workers=2)
    assert sorted((p.scenario.key, p.trial) for u in units for p in u) == sorted(
        (p.scenario.key, p.trial) for p in plans)
    assert all(len({p.scenario.sites[0].module for p in u}) == 1 for u in units)
    assert len(units) >= GROUPS_PER_WORKER * 2 and max(map(len, units)) <= MAX_GROUP
    engine.group_size = 7
    assert max(len(u) for u in engine.groups(plans, workers=2)) <= 7


def test_bad_options_are_refused(ray_cluster):
    for options, message in (({"workers": 0}, "workers"), ({"threads": 0}, "threads"),
                             ({"worker_cpus": 0}, "worker_cpus"), ({"address": ""}, "address"),
                             ({"rebuild": "mnist-cnn"}, "rebuild")):
        with pytest.raises(am.InvalidParameterError, match=message):
            am.create_engine("ray", **options)
    assert am.create_engine("ray", device="cpu").describe()["engine"] == "ray"
