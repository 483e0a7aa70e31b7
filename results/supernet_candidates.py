"""Which architectures a supernet run trains on their own, in which order: the search decides
it (:mod:`mdsearch.search.supernet_candidates`); its name stays importable here."""

from __future__ import annotations

from mdsearch.search.supernet_candidates import rank_candidates

__all__ = ["rank_candidates"]
