"""The campaign layer: runs (engine, store, settings), campaigns of seeded trials, the store."""

from approxmap.campaign.campaign import Campaign, summarize, weights_digest
from approxmap.campaign.run import Run
from approxmap.campaign.store import Store

__all__ = ["Campaign", "Run", "Store", "summarize", "weights_digest"]
