"""Scenarios, campaigns, trial records and their store."""

from approxmap.campaign.campaign import Campaign
from approxmap.campaign.records import TrialRecord
from approxmap.campaign.scenario import Scenario, trial_seed
from approxmap.campaign.store import Store

__all__ = ["Campaign", "Scenario", "Store", "TrialRecord", "trial_seed"]
