"""Planning: which layer (and which filters) get which approximate multiplier, for the most
energy saved within an accuracy budget — searched on predictions, verified by emulation.

1. Every (layer, option) is predicted (`predict`): an option is a unit for the whole layer
   (granularity "layer"), or, with significance classes (granularity "class"), the unit for
   the approximable filters, the critical ones exact and, with `prune`, the prunable ones
   removed — in convolutions whose filters can be removed alone (a Torch-Pruning dependency
   group of one layer; elsewhere, e.g. the classifier, prunable filters take the unit like
   approximable ones). Its predicted loss is its accuracy drop against the same layer with
   exact int8 products; its saving the multiplier energy it saves (`approxmap.multipliers.energy`).
2. A multiple-choice knapsack (dynamic programming over the loss in steps of 0.01 pp,
   assuming the losses of layers add up) picks one option per layer with the largest
   saving whose predicted loss fits the budget; over a ladder of budgets it gives the
   predicted Pareto front of energy against accuracy.
3. The plan is verified by emulation (every layer at once, bit-exact): it is reported as
   meeting the budget only if its measured accuracy does. When it does not, the layer whose
   option costs the most predicted loss per energy saved is backed off to its next safer
   option (less saving, no more predicted loss; else exact), and the plan is verified again
   (repair). Points of the front are verified too,
   and so is every uniform assignment (one unit in every layer), for comparison.
4. Upgrades: from the verified plan, the option that adds the most saving per predicted loss
   is emulated in its layer; it is kept if the plan still meets the budget (at most
   `max_upgrades` tries). This corrects predictions that are pessimistic for some layer.
5. The reported plan is the configuration with the least energy among all those emulated
   that meet the budget (the searched plan, verified front points, uniform assignments);
   `chosen_from` says which. All are verified on the same evaluation images, so the chosen
   accuracy is slightly optimistic for unseen data (a selection effect: check a plan on
   held-out data with `approxmap emulate --plan plan.json --data ...`).

The budget is in percentage points of top-1 accuracy below the exact int8 network (all
chosen layers int8 with exact products), the baseline a designer deploys.

>>> result = plan_analysis(model, data, PlanSpec(units=("drum:6", "trunc:4")), run)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from approxmap.analysis.classify import classify_by_thresholds
from approxmap.analysis.emulate import (
    Assignment,
    EmulateSpec,
    Quantized,
    calibration_split,
    checked_units,
    multiplier_layers,
)
from approxmap.analysis.results import Result, register_result
from approxmap.analysis.significance import compute_significance
from approxmap.campaign.campaign import Campaign
from approxmap.campaign.run import Run
from approxmap.core.data import EvalData
from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.layers import layer_table
from approxmap.core.scenario import Scenario
from approxmap.core.sites import Site
from approxmap.multipliers.energy import EnergyModel
from approxmap.pruning.units import pruning_units, read_points

STEP_PP = 0.01  # loss resolution of the knapsack
FRONT_FACTORS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class PlanSpec(Quantized):
    """What to plan: candidate units, the budget, the granularity, the energy model.

    With granularity "class" and `prune`, prunable filters are removed only in convolutions
    that can lose filters alone (not coupled by residual adds, not grouped, not the
    classifier); elsewhere they take the unit.

    Raises:
        UnknownNameError: an unknown unit or criterion.
        InvalidParameterError: no unit, a budget < 0 or > 100, an unknown granularity.
    """

    units: tuple[str, ...]
    budget_pp: float = 1.0
    granularity: str = "layer"
    prune: bool = False
    layers: tuple[str, ...] | None = None
    criterion: str = "l1"
    thresholds: tuple[float, ...] | None = None
    activation: str = "uint8"
    calibration: str = "minmax"
    percentile: float = 99.99
    calib_images: int = 500
    energy: EnergyModel = field(default_factory=EnergyModel)
    verify_front: int = 4
    max_repairs: int = 64
    max_upgrades: int = 16
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.units:
            raise InvalidParameterError("Give at least one multiplier unit.")
        if isinstance(self.budget_pp, bool) or not isinstance(self.budget_pp, int | float) or not (
                math.isfinite(self.budget_pp) and 0 <= self.budget_pp <= 100):
            raise InvalidParameterError(
                f"The budget must be in [0, 100] percentage points. Got {self.budget_pp!r}.")
        if self.granularity not in ("layer", "class"):
            raise InvalidParameterError(
                f"granularity must be 'layer' or 'class'. Got {self.granularity!r}.")
        if self.prune and self.granularity != "class":
            raise InvalidParameterError("Pruning in a plan needs granularity 'class' "
                                        "(prunable filters are a significance class).")
        self.check_scheme()
        object.__setattr__(self, "units", tuple(u for u in checked_units(self.units)
                                                if u != "exact"))


@dataclass
class PlanLayer:
    """A layer of the plan: its unit (for `channels`, else every filter), pruned filters,
    MACs per sample, and its multiplier energy per inference (pJ) with and without the plan."""

    layer: str
    unit: str
    channels: list[int] | None
    pruned: list[int]
    macs: int
    energy_pj: float
    exact_energy_pj: float
    predicted_loss_pp: float


@register_result("plan")
@dataclass
class PlanResult(Result):
    """What plan.json holds (`approxmap emulate --plan plan.json` replays it)."""

    model: str
    dataset: str
    images: int
    selection: str
    calibration: str
    budget_pp: float
    granularity: str
    prune: bool
    float_accuracy: float
    int8_accuracy: float
    layers: list[PlanLayer]
    energy_pj: float
    exact_energy_pj: float
    saving_pct: float
    predicted_accuracy: float
    verified_accuracy: float
    verified_low: float
    verified_high: float
    meets_budget: bool
    repairs: list[dict[str, Any]] = field(default_factory=list)
    upgrades: list[dict[str, Any]] = field(default_factory=list)
    chosen_from: str = "search"
    front: list[dict[str, Any]] = field(default_factory=list)
    uniform: list[dict[str, Any]] = field(default_factory=list)
    energy_model: dict[str, Any] = field(default_factory=dict)
    energy_sources: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": "approxmap-plan/1", **super().to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanResult:
        names = {f for f in cls.__dataclass_fields__ if f not in ("layers", "extra")}
        try:
            return cls(**{k: data[k] for k in names if k in data},
                       layers=[PlanLayer(**r) for r in data["layers"]],
                       extra={k: v for k, v in data.items()
                              if k not in names | {"layers", "format"}})
        except (KeyError, TypeError) as exc:
            raise InvalidParameterError(f"Not an approxmap plan: {exc}") from None

    @property
    def best_uniform(self) -> dict[str, Any] | None:
        meeting = [u for u in self.uniform if u["meets_budget"]]
        return max(meeting, key=lambda u: u["saving_pct"]) if meeting else None


def plan_options(model: nn.Module, data: EvalData, spec: PlanSpec, layers: Sequence[str],
                 run: Run) -> dict[str, list[Assignment]]:
    """Per layer, the options (the unit everywhere, or by significance class)."""
    if spec.granularity == "layer":
        return {layer: [Assignment(layer, u) for u in spec.units] for layer in layers}
    calib = data.subset(min(spec.calib_images, len(data))) if data.x is not None else data
    sig = compute_significance(model, calib, [spec.criterion], list(layers), run=run)
    classes = classify_by_thresholds(sig, spec.criterion, thresholds=spec.thresholds)
    removable = set()
    if spec.prune:  # filters removable alone: a dependency group of one convolution
        removable = {u.name for u in pruning_units(model, data.sample(1)) if not u.coupled}
    options = {}
    for layer in layers:
        labels = classes[layer]
        if layer in removable:
            approx = tuple(i for i, c in enumerate(labels) if c == "approximable")
            pruned = tuple(i for i, c in enumerate(labels) if c == "prunable")
        else:
            approx, pruned = tuple(i for i, c in enumerate(labels) if c != "critical"), ()
        layer_options = [Assignment(layer, u, approx, pruned) for u in spec.units if approx]
        if pruned:
            layer_options.append(Assignment(layer, "exact", None, pruned))
        options[layer] = layer_options
    return options


def option_energy(option: Assignment, macs: int, filters: int, energy: EnergyModel) -> float:
    """Multiplier energy per inference (pJ) of a layer computed with `option`."""
    live = filters - len(option.pruned)
    unit_filters = live if option.channels is None else len(option.channels)
    exact_filters = live - unit_filters
    return macs / filters * (unit_filters * energy.multiply_pj(option.unit)[0]
                             + exact_filters * energy.multiply_pj("exact")[0])


def knapsack(choices: Mapping[str, Sequence[tuple[float, float, Any]]], budget_pp: float
             ) -> tuple[float, dict[str, Any]]:
    """Multiple-choice knapsack: per layer at most one (loss_pp, saving, payload); the
    largest total saving with total loss <= budget. Returns (saving, layer -> payload)."""
    steps = int(round(budget_pp / STEP_PP))
    best = np.full(steps + 1, -np.inf)
    best[0] = 0.0
    picks: list[dict[int, tuple[int, Any]]] = []
    for layer, options in choices.items():
        new = best.copy()  # taking no option (exact) keeps the old value
        choice: dict[int, tuple[int, Any]] = {}
        for loss, saving, payload in options:
            cost = max(0, int(math.ceil(max(loss, 0.0) / STEP_PP - 1e-9)))
            if cost > steps or saving <= 0:
                continue
            shifted = np.full(steps + 1, -np.inf)
            shifted[cost:] = best[:steps + 1 - cost] + saving
            better = shifted > new
            new = np.where(better, shifted, new)
            for b in np.nonzero(better)[0]:
                choice[int(b)] = (cost, payload)
        best = new
        picks.append((layer, choice))
    at = int(np.argmax(best))
    total = float(best[at])
    plan: dict[str, Any] = {}
    for layer, choice in reversed(picks):
        if at in choice:
            cost, payload = choice[at]
            plan[layer] = payload
            at -= cost
    return total, plan


def plan_analysis(model: nn.Module, data: EvalData, spec: PlanSpec, run: Run | None = None,
                  calib_data: EvalData | None = None) -> PlanResult:
    """Predict, search, verify (with repair), compare with uniform assignments."""
    run = run or Run(trials=2)
    table = {row.name: row for row in layer_table(model, data.sample(1))}
    modules = dict(model.named_modules())
    layers = multiplier_layers(model, spec.layers, {k for k, r in table.items() if r.executed})
    calib = calibration_split(data, spec.calib_images, calib_data)
    points = read_points(model) if spec.prune else {}
    options = plan_options(model, data, spec, layers, run)
    filters = {layer: modules[layer].weight.shape[0] for layer in layers}
    macs = {layer: table[layer].macs for layer in layers}
    exact_energy = {layer: option_energy(Assignment(layer, "exact"), macs[layer], filters[layer],
                                         spec.energy) for layer in layers}

    emulation = EmulateSpec(units=spec.units, activation=spec.activation,
                            calibration=spec.calibration, percentile=spec.percentile)

    def scenario(opts: Sequence[Assignment], target: str) -> Scenario:
        chosen = {o.layer: o for o in opts}
        return emulation.scenario([chosen.get(layer, Assignment(layer, "exact"))
                                   for layer in layers], points, target)

    # 1. predictions: each layer alone, exact int8 there vs each option
    single = {(layer, None): Scenario.single(Site(layer, "multiplier-noise"), spec.unit("exact"))
              for layer in layers}
    single.update({(o.layer, o): emulation.scenario([o], points, "multiplier-noise")
                   for opts in options.values() for o in opts})
    predict = Campaign(model, data, single.values(), run, name="plan-predict", stats_data=calib,
                       setup={"calibration": f"{calib.name}: {calib.selection}"})
    predict.run()
    acc = {k: s.accuracy for k, s in zip(single, predict.summaries(
        [s.key for s in single.values()]), strict=True)}
    choices = {layer: [(100 * (acc[(layer, None)] - acc[(layer, o)]),
                        exact_energy[layer] - option_energy(o, macs[layer], filters[layer],
                                                            spec.energy), o)
                       for o in options[layer]] for layer in layers}
    loss = {o: c[0] for layer in layers for c in choices[layer] for o in (c[2],)}

    # 2. verification campaign (emulation, deterministic: one trial)
    verify = Campaign(model, data, [], run.with_(trials=1), name="plan-verify", stats_data=calib,
                      setup={"calibration": f"{calib.name}: {calib.selection}"})

    def measured(opts: Sequence[Assignment]):
        s = scenario(opts, "multiplier")
        verify.add_scenarios([s])
        verify.run(keys=[s.key])
        return verify.summaries([s.key])[0]

    int8 = measured([])
    budget = spec.budget_pp

    def meets(summary) -> bool:
        return 100 * (int8.accuracy - summary.accuracy) <= budget + 1e-9

    def saving(o: Assignment | None) -> float:
        if o is None:
            return 0.0
        return exact_energy[o.layer] - option_energy(o, macs[o.layer], filters[o.layer],
                                                     spec.energy)

    _, picked = knapsack(choices, budget)
    plan = list(picked.values())
    summary = measured(plan)
    repairs = []
    while not meets(summary) and plan and len(repairs) < spec.max_repairs:
        worst = max(plan, key=lambda o: loss[o] / max(saving(o), 1e-12))
        # strictly less saving (so repairs end), and no more predicted loss
        safer = [c for c in choices[worst.layer]
                 if 0 < c[1] < saving(worst) - 1e-9 and c[0] <= loss[worst]]
        replacement = max(safer, key=lambda c: c[1])[2] if safer else None
        repairs.append({"layer": worst.layer, "from": worst.unit,
                        "to": replacement.unit if replacement else "exact",
                        "measured_drop_pp": 100 * (int8.accuracy - summary.accuracy)})
        plan = [o for o in plan if o is not worst] + ([replacement] if replacement else [])
        summary = measured(plan)

    # 4. upgrades, each verified: the option with the most saving gained per predicted loss
    # added, kept only while the emulated plan still meets the budget
    upgrades, tried = [], set()
    while meets(summary) and len(tried) < spec.max_upgrades:
        current = {o.layer: o for o in plan}
        steps = [(saving(o) - saving(current.get(layer)), loss[o] - loss.get(current.get(layer), 0),
                  o) for layer in layers for _, _, o in choices[layer]
                 if o not in tried and saving(o) > saving(current.get(layer)) + 1e-9]
        if not steps:
            break
        gain, added, option = max(steps, key=lambda t: t[0] / max(t[1], STEP_PP))
        tried.add(option)
        trial = [o for o in plan if o.layer != option.layer] + [option]
        trial_summary = measured(trial)
        if meets(trial_summary):
            upgrades.append({"layer": option.layer,
                             "from": current[option.layer].unit if option.layer in current
                             else "exact", "to": option.unit,
                             "measured_drop_pp": 100 * (int8.accuracy - trial_summary.accuracy)})
            plan, summary = trial, trial_summary

    def energy_of(opts: Sequence[Assignment]) -> float:
        chosen = {o.layer: o for o in opts}
        return sum(option_energy(chosen.get(layer, Assignment(layer, "exact")), macs[layer],
                                 filters[layer], spec.energy) for layer in layers)

    total_exact = sum(exact_energy.values())
    # every emulated configuration that may be chosen; exact int8 meets any budget
    verified = [("search", plan, summary), ("exact int8 network", [], int8)]
    front = []
    for factor in FRONT_FACTORS:
        _, point = knapsack(choices, budget * factor if budget else STEP_PP * factor * 10)
        opts = list(point.values())
        predicted = sum(loss[o] for o in opts)
        entry = {"budget_pp": budget * factor, "predicted_loss_pp": predicted,
                 "energy_pj": energy_of(opts),
                 "saving_pct": 100 * (1 - energy_of(opts) / total_exact)}
        if len(front) < spec.verify_front or factor == 1.0:
            point_summary = measured(opts)
            entry["verified_accuracy"] = point_summary.accuracy
            verified.append((f"front point at {factor:g}x the budget", opts, point_summary))
        front.append(entry)
    uniform = []
    for unit in spec.units:
        opts = [o for layer in layers for o in options[layer] if o.unit == unit]
        s = measured(opts)
        verified.append((f"uniform {unit}", opts, s))
        uniform.append({"unit": unit, "energy_pj": energy_of(opts),
                        "saving_pct": 100 * (1 - energy_of(opts) / total_exact),
                        "verified_accuracy": s.accuracy, "meets_budget": meets(s)})
    # 5. the plan is the verified configuration with the least energy within the budget
    meeting = [v for v in verified if meets(v[2])]
    origin, plan, summary = min(meeting, key=lambda v: energy_of(v[1])) if meeting else verified[0]
    chosen = {o.layer: o for o in plan}
    rows = []
    for layer in layers:
        option = chosen.get(layer, Assignment(layer, "exact"))
        rows.append(PlanLayer(layer, option.unit, None if option.channels is None else
                              list(option.channels), list(option.pruned), macs[layer],
                              option_energy(option, macs[layer], filters[layer], spec.energy),
                              exact_energy[layer], loss.get(option, 0.0)))
    total = energy_of(plan)
    return PlanResult(
        run.names.get("model", "custom"), run.names.get("dataset", data.name), len(data),
        data.selection, f"{calib.name}: {calib.selection}", budget, spec.granularity, spec.prune,
        predict.clean_accuracy(), int8.accuracy, rows, total, total_exact,
        100 * (1 - total / total_exact), int8.accuracy - sum(loss[o] for o in plan) / 100,
        summary.accuracy, summary.wilson_low, summary.wilson_high, meets(summary), repairs,
        upgrades, origin, front, uniform, spec.energy.to_dict(),
        {u: spec.energy.multiply_pj(u)[1] for u in ("exact", *spec.units)}, dict(spec.extra))


__all__ = ["PlanLayer", "PlanResult", "PlanSpec", "knapsack", "option_energy",
           "plan_analysis", "plan_options"]
