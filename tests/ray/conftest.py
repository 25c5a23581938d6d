"""A real local Ray cluster for the Ray engine's tests: one per test session (2 CPUs).

Tests that need Ray ask for `ray_cluster` (or `make_engine`); they skip, with the reason,
when Ray is not installed (`pip install 'approxmap[ray]'`; `make test` installs it).
"""

from __future__ import annotations

import logging

import pytest
from raykit import require_ray

import approxmap as am

SPEC = "mnist-cnn"


@pytest.fixture(scope="session")
def ray_cluster():
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        # "local": a new instance, never one `ray start` (or a test's Cluster) left behind
        ray.init(address="local", num_cpus=2, include_dashboard=False,
                 logging_level=logging.WARNING)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture
def make_engine(ray_cluster):
    """RayEngine(**options) with the mnist-cnn recipe by default; closed after the test, so
    its workers never hold the cluster's CPUs for the next one."""
    engines = []

    def make(**options):
        options.setdefault("rebuild", am.ModelRecipe.from_spec(SPEC))
        engine = am.RayEngine(**options)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture(scope="session")
def ray_data(mnist_full):
    return mnist_full.subset(100)
