"""Pairing by the table: which route a group of same-stem files makes, derived from :data:`omad.routes.TABLE`.

Each route lists the plain drops it takes (:class:`omad.routes.Drop`): the
kinds a drop needs, the kinds it may take besides, how long it waits for a
partner and under which setting. This module turns that into one decision for
a group of files (go, hold a while, wait for a partner, refuse), the texts
that name a missing partner, and the accepted-files text. It reads no file and
knows nothing of entries or the journal: :mod:`omad.intake` calls it with the
group's kinds and names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .kinds import KINDS, Kind, shown
from .routes import TABLE, Drop, Route

if TYPE_CHECKING:
    from .config import IntakeConfig

__all__ = ["Go", "Hold", "Partner", "Refuse", "Decision", "pair", "partners", "accepted", "expected"]


@dataclass(frozen=True)
class Go:
    """The group is a drop of ``route``."""

    route: str


@dataclass(frozen=True)
class Hold:
    """The group could go now but waits a short grace for a partner; ``kind`` is the file it waits on."""

    kind: str
    reason: str


@dataclass(frozen=True)
class Partner:
    """The group lacks a needed file of ``kind``: it waits ``intake.<wait>``, then is refused on ``route``."""

    route: str
    kind: str
    wait: str
    #: a file alone at the inbox root (the message lists every partner it could have)
    lone: bool


@dataclass(frozen=True)
class Refuse:
    """The group is no drop omad knows; ``message`` says why. ``whole``: about the group, not its first file."""

    route: str
    message: str
    whole: bool = False


Decision = Go | Hold | Partner | Refuse


def _route(name: str) -> Route:
    return next(r for r in TABLE if r.name == name)


def _root_drops() -> list[tuple[Route, Drop]]:
    return [(r, d) for r in TABLE for d in r.drops if d.root]


def _enabled(drop: Drop, intake: IntakeConfig) -> bool:
    return drop.when is None or str(getattr(intake, drop.when[0])) == drop.when[1]


def _grace(drop: Drop, intake: IntakeConfig, once: bool) -> float:
    if once or drop.grace is None:
        return 0.0
    return float(getattr(intake, drop.grace) or intake.partner_grace_seconds)


def _fits(drop: Drop, have: set[str]) -> bool:
    return drop.needs <= have <= drop.kinds


def expected(kinds: set[str] | frozenset[str]) -> str:
    """``a same-name audio file``: how a message names a partner of one of ``kinds``."""
    return "a same-name " + " or ".join(KINDS[Kind(k)].noun for k in sorted(kinds))


def partners(kind: str) -> str:
    """Every partner a lone file of ``kind`` could have at the inbox root, with what it is for; '' if none."""
    found: dict[str, str] = {}
    for _route, d in _root_drops():
        if kind not in d.kinds or len(d.kinds) < 2:
            continue
        for other in sorted(d.needs - {kind}):
            purpose = f", {d.purpose}" if d.purpose else ""
            found.setdefault(other, f"{KINDS[Kind(other)].noun} ({shown(other)}{purpose})")
    return "a same-name " + " or ".join(found.values()) if found else ""


def _lone_route(kind: str) -> str:
    return next((r.name for r, d in _root_drops() if kind in d.needs and len(d.needs) > 1), "unknown")


def _in_order(kinds: frozenset[str]) -> list[str]:
    order = [k.value for k in KINDS]
    return sorted(kinds, key=lambda k: order.index(k) if k in order else len(order))


def _shape(d: Drop) -> str:
    text = " + ".join(KINDS[Kind(k)].noun for k in _in_order(d.needs))
    if d.may:
        text += f" (+ {' + '.join(KINDS[Kind(k)].noun for k in _in_order(d.may))})"
    elif len(d.needs) == 1 and d.then:
        text = f"{KINDS[Kind(next(iter(d.needs)))].one} alone"
    return text


def accepted() -> str:
    """What omad accepts, as one sentence for messages (derived from the table)."""
    by_route: dict[str, list[str]] = {}
    for r, d in _root_drops():
        by_route.setdefault(r.name, []).append(_shape(d))
    drops = ", ".join(f"{' or '.join(shapes)} ({name})" for name, shapes in by_route.items())
    kinds = "; ".join(f"{info.noun} {' '.join(info.shown)}" for k, info in KINDS.items() if k != Kind.BRIEF)
    return (f"same-name files: {drops}; a brief (.yaml/.json); or a folder holding brief.yaml and its assets "
            f"(files by extension: {kinds})")


def pair(files: dict[str, str], names: list[str], forced: str | None, intake: IntakeConfig, ready_for: float,
         once: bool) -> Decision:
    """The decision for a group of same-stem files, one per kind (``files``: kind -> file name).

    ``forced`` is the route whose inbox folder the group sits in; ``ready_for`` how long the group has been
    complete. Duplicate kinds and unknown types are intake's to refuse before this is asked.
    """
    have = set(files)
    if forced is not None:
        return _forced(_route(forced), have, files, names, intake, ready_for, once)
    for r, d in _root_drops():
        if not _enabled(d, intake) or not _fits(d, have):
            continue
        missing = d.may - have
        reason = f"may get {expected(missing)}" if missing else ""
        if not reason and d.then:
            lone = partners(next(iter(have))) if len(have) == 1 else ""
            reason = f"may get {lone}; {d.then} if none comes" if lone else ""
        if reason and ready_for < _grace(d, intake, once):
            return Hold(sorted(d.needs)[0], reason)
        return Go(r.name)
    if len(have) == 1 and partners(next(iter(have))):
        kind = next(iter(have))
        route = _lone_route(kind)
        return Partner(route, kind, _route(route).wait if route != "unknown" else "pair_timeout_seconds", lone=True)
    return Refuse("unknown", f"{', '.join(sorted(names))} share a name but do not make a drop omad knows. omad "
                  f"accepts {accepted()}. Use a brief to say what you want.", whole=True)


def _forced(route: Route, have: set[str], files: dict[str, str], names: list[str], intake: IntakeConfig,
            ready_for: float, once: bool) -> Decision:
    name = route.name
    if not route.drops:
        return Refuse(name, f"the {name}/ folder takes briefs (.yaml/.json) or bundle folders; move "
                            f"{', '.join(names)} to the inbox root.")
    fit = next((d for d in route.drops if _fits(d, have)), None)
    if fit is not None:
        missing = fit.may - have
        if missing and ready_for < _grace(fit, intake, once):
            return Hold(sorted(fit.needs)[0], f"may get {expected(missing)}")
        return Go(name)
    if len(route.drops) > 1:
        shapes = " or ".join("one " + " + ".join(KINDS[Kind(k)].one for k in sorted(d.needs)) for d in route.drops)
        return Refuse(name, f"the {name}/ folder takes {shapes} per name; {', '.join(sorted(names))} do not "
                            "belong there together.")
    d = route.drops[0]
    extra = have - d.kinds
    if extra:
        return Refuse(name, f"the {name}/ folder expects {' + '.join(sorted(d.needs))} files; "
                            f"{', '.join(files[k] for k in sorted(extra))} does not belong there.")
    return Partner(name, sorted(d.needs - have)[0], route.wait, lone=False)
