"""AAMI EC57 beat classes and the MIT-BIH annotation symbol maps.

Two conventions (see ../shared/data/ec57-vectors/README.md):
* ``AAMI_DE_CHAZAL``: de Chazal et al. 2004, used for training targets and the
  classifier's acceptance figures (escape beats e, j are N).
* ``AAMI_BXB``: PhysioNet bxb with SVEB statistics (e, j, n are S; r is V; B is N).
"""

from __future__ import annotations

AAMI_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")

AAMI_DE_CHAZAL: dict[str, str] = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}

AAMI_BXB: dict[str, str] = {
    **dict.fromkeys("NLRB", "N"),
    **dict.fromkeys("AaJSejn", "S"),
    **dict.fromkeys("VEr", "V"),
    "F": "F",
    **dict.fromkeys("Q/f?", "Q"),
}

# Every MIT-BIH beat annotation code (wfdb's "is beat" set).
BEAT_SYMBOLS: frozenset[str] = frozenset("NLRBAaJSVrFejnE/fQ?")

# Rhythm annotation aux strings we emit and learn (MIT-BIH conventions, without "(").
RHYTHM_CODES: tuple[str, ...] = ("N", "AFIB", "AFL", "VT", "VFL", "SVTA", "B", "T", "SBR",
                                 "BII", "PREX", "IVR", "NOD", "P", "AB", "VFIB", "PAUSE")


def aami_class(symbol: str, convention: dict[str, str] = AAMI_DE_CHAZAL) -> str | None:
    """AAMI class of an MIT-BIH beat symbol, or None for a non-beat annotation."""
    return convention.get(symbol)
