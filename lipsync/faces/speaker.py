"""Which person to re-sync: one identity over time, from position and size continuity.

Choosing "the largest face" anew in every frame makes the new mouth hop between two people of
similar size whenever their sizes swap by a few per cent. ``SpeakerLock`` instead follows every
face it sees as a *track* (its last centre and size, and the frame it was last seen in) and picks
the person once:

- ``largest``: the largest face of the first frame with a face (the default; ``closest`` is the
  name earlier versions gave this follow-the-same-face choice and means the same now);
- ``index``: the ``face_index``-th face from the left in the first frame that has that many;
- ``point``: in the first frame with a face, the face whose box holds the point ``(x, y)`` (the
  smallest such box), else the face whose centre is nearest to it.

After that, each frame's faces are matched to the tracks: the tracks seen most recently choose
first, then the cheapest pairs, where the cost is the centre distance in face sizes (the square
root of the track's box area) plus the size change ``|ln(size ratio)|``. A track only takes a
face within its gate: ``gate`` face sizes, plus ``gate_growth`` for each frame it has not been
seen, and a size within ``max_scale`` times its own (``reacquire_scale`` once it has been
missed). So:

- size changes never switch the person: size only enters through the gates and the cost;
- another person in view keeps their own track: it chooses before any track that was missed;
- a brief miss (the face not detected for some frames): the chosen person's frames have no face
  (the missing-face policy fills them), and the person is matched again when they are seen;
- a face that leaves and comes back: the chosen track waits, its gate widening with the time it
  has been away, and takes the face nearest to where it was last seen, of a similar size, among
  the faces nobody else had when the person was last seen (a face with no track, or one whose
  track began since) — never the face of someone seen together with them, and never "the
  largest now";
- with none of the people seen together with them in view any more (not seen for ``forget``
  frames), any face is the chosen person: one person filmed across a cut or a fast move is
  followed at once.

What position and size cannot tell apart is left unsynced rather than given to someone else: a
cut to a close-up of the chosen person (more than ``reacquire_scale`` times larger) while someone
seen with them is still in view is not re-acquired until the framing comes back.

Other tracks unseen for ``forget`` frames are dropped, so the state stays small. The lock works
on the frames it is shown (``detect_every`` skips count as frames not seen).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ..errors import InputError
from ..types import Detection, FaceChoice, choices

__all__ = ["SpeakerLock", "SpeakerParams", "SpeakerReport"]


@dataclass(frozen=True)
class SpeakerParams:
    """The gates of ``SpeakerLock`` (centre distances in face sizes, sizes as ratios)."""

    gate: float = 0.5
    """Centre distance a track may move between two consecutive frames, in face sizes."""
    gate_growth: float = 0.1
    """Extra distance allowed per frame the track was not seen (2.5 face sizes a second at 25 fps)."""
    max_scale: float = 1.5
    """Size ratio a track accepts from one frame to the next."""
    reacquire_scale: float = 2.0
    """Size ratio accepted after the track was missed for some frames."""
    forget: int = 50
    """Frames after which a track that is not the chosen one is dropped (2 s at 25 fps)."""

    def check(self) -> SpeakerParams:
        if self.gate <= 0 or self.gate_growth < 0 or self.forget < 1:
            raise InputError(
                f"speaker lock needs gate > 0, gate_growth >= 0 and forget >= 1; got {self.gate}, "
                f"{self.gate_growth}, {self.forget}."
            )
        if not 1.0 < self.max_scale <= self.reacquire_scale:
            raise InputError(
                f"speaker lock needs 1 < max_scale <= reacquire_scale; got {self.max_scale}, {self.reacquire_scale}."
            )
        return self


@dataclass
class _Track:
    """One person: where and how large their face was when last seen."""

    cx: float
    cy: float
    size: float
    seen: int
    born: int

    def update(self, det: Detection, index: int) -> None:
        self.cx, self.cy = det.center
        self.size = _size(det)
        self.seen = index


def _size(det: Detection) -> float:
    return max(math.sqrt(det.area), 1.0)


@dataclass
class SpeakerReport:
    """What a ``SpeakerLock`` did, for people: the person was chosen in frame ``frame`` (None: no
    face was ever seen) among ``faces`` faces, ``rank`` counted from the left (0 = leftmost), by
    ``choice``; ``people`` distinct faces were seen in all; ``returns`` times the person was taken
    back after being lost (a miss, or leaving and coming back)."""

    choice: FaceChoice = "largest"
    frame: int | None = None
    faces: int = 0
    rank: int = 0
    box: tuple[int, int, int, int] | None = field(default=None, compare=False)
    people: int = 0
    returns: int = 0
    most_faces: int = 0
    """The most faces in one frame looked at before the choice (why an index found nobody)."""
    face_index: int = 0

    @property
    def index_unmet(self) -> bool:
        """Whether nobody was followed because the chosen face index needs more faces than any
        frame had (``describe`` says how many were seen)."""
        return self.frame is None and self.choice == "index" and self.most_faces > 0

    def describe(self) -> str:
        """One line, e.g. "the largest face at the start (frame 0: 2nd from the left of 2), kept;
        2 faces seen, taken back 1 time after being lost"."""
        if self.frame is None:
            if self.index_unmet:
                return (f"nobody: face index {self.face_index} needs {self.face_index + 1} faces in a frame, "
                        f"at most {self.most_faces} were seen (0 is the leftmost)")
            return "no face seen"
        rule = {"largest": "the largest face at the start", "closest": "the largest face at the start",
                "index": "the face at the chosen index", "point": "the face at the chosen point"}[self.choice]
        text = f"{rule} (frame {self.frame}: {_ordinal(self.rank + 1)} from the left of {self.faces}), kept"
        if self.people > 1:
            text += f"; {self.people} faces seen"
        if self.returns:
            text += f", taken back {self.returns} time{'s' if self.returns > 1 else ''} after being lost"
        return text


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


class SpeakerLock:
    """Picks one person and follows them: ``pick(index, detections)`` returns the position in
    ``detections`` of the chosen person's face in frame ``index``, or None when they are not in
    it (or not chosen yet). Frames must come in increasing order; ``reset()`` starts afresh.

    ``point`` is (x, y) in pixels of the frames shown, used with ``choice="point"``.
    """

    def __init__(
        self,
        choice: FaceChoice = "largest",
        face_index: int = 0,
        point: tuple[float, float] = (0.0, 0.0),
        params: SpeakerParams | None = None,
    ) -> None:
        if choice not in choices(FaceChoice):
            raise InputError(f"Unknown face choice {choice!r}; choose one of: {', '.join(choices(FaceChoice))}.")
        if face_index < 0:
            raise InputError(f"face_index must be >= 0; got {face_index}.")
        self.choice: FaceChoice = choice
        self.face_index = int(face_index)
        self.point = (float(point[0]), float(point[1]))
        self.params = (params or SpeakerParams()).check()
        self._tracks: list[_Track] = []
        self._chosen: _Track | None = None
        self._missed = False
        self.report = SpeakerReport(choice, face_index=self.face_index)
        """What was chosen and kept since the start (or the last ``reset``)."""

    @property
    def chosen(self) -> bool:
        """Whether the person has been picked."""
        return self._chosen is not None

    def reset(self) -> None:
        self._tracks.clear()
        self._chosen = None
        self._missed = False
        self.report = SpeakerReport(self.choice, face_index=self.face_index)

    def pick(self, index: int, detections: Sequence[Detection]) -> int | None:
        """The position of the chosen person's face among ``detections`` in frame ``index``."""
        matched = self._match(index, detections)
        if self._chosen is None:
            self.report.most_faces = max(self.report.most_faces, len(detections))
            first = self._first_choice(detections)
            self._new_tracks(index, detections, matched)
            self._forget(index)
            if first is not None:
                self._chosen = matched[first]
                self._record_choice(index, detections, first)
            return first
        chosen = self._chosen
        found = next((k for k, t in matched.items() if t is chosen), None)
        if found is None:
            found = self._reacquire(index, detections, matched, chosen)
        if found is None:
            self._missed = True
        elif self._missed:  # back after at least one frame looked at without them
            self._missed = False
            self.report.returns += 1
        self._new_tracks(index, detections, matched)
        self._forget(index)
        return found

    def _reacquire(
        self, index: int, detections: Sequence[Detection], matched: dict[int, _Track], chosen: _Track
    ) -> int | None:
        """The chosen person was not matched: take a face nobody else had when they were last
        seen (an unmatched one, or one of a track born since), the nearest to where they were;
        within the widened gate when someone seen with them is still in view, else any."""
        newcomer = [k for k in range(len(detections)) if k not in matched or matched[k].born > chosen.seen]
        if not self._companions_in_view(index, chosen):
            allowed = newcomer
        else:
            allowed = [k for k in newcomer if self._allowed(chosen, detections[k], index)]
        if not allowed:
            return None
        found = min(allowed, key=lambda k: self._cost(chosen, detections[k]))
        if found in matched:  # the newcomer's track was this person all along
            self._tracks.remove(matched[found])
        chosen.update(detections[found], index)
        matched[found] = chosen
        return found

    # matching ---------------------------------------------------------------------------

    def _cost(self, track: _Track, det: Detection) -> float:
        x, y = det.center
        distance = math.hypot(x - track.cx, y - track.cy) / track.size
        return distance + abs(math.log(_size(det) / track.size))

    def _allowed(self, track: _Track, det: Detection, index: int) -> bool:
        p = self.params
        missed = max(index - track.seen - 1, 0)
        x, y = det.center
        distance = math.hypot(x - track.cx, y - track.cy) / track.size
        ratio = _size(det) / track.size
        scale = p.max_scale if missed == 0 else p.reacquire_scale
        return distance <= p.gate + p.gate_growth * missed and 1.0 / scale <= ratio <= scale

    def _match(self, index: int, detections: Sequence[Detection]) -> dict[int, _Track]:
        """Detections to tracks, each at most once (greedy): the tracks seen most recently choose
        first (a face in view keeps its detection however close a long-lost track was to it),
        then the cheapest pair first."""
        pairs = sorted(
            (index - t.seen, self._cost(t, d), k, n)
            for n, t in enumerate(self._tracks)
            for k, d in enumerate(detections)
            if self._allowed(t, d, index)
        )
        matched: dict[int, _Track] = {}
        taken: set[int] = set()
        for _, _, k, n in pairs:
            if k in matched or n in taken:
                continue
            matched[k] = self._tracks[n]
            taken.add(n)
        for k, track in matched.items():
            track.update(detections[k], index)
        return matched

    def _new_tracks(self, index: int, detections: Sequence[Detection], matched: dict[int, _Track]) -> None:
        for k, det in enumerate(detections):
            if k not in matched:
                x, y = det.center
                track = _Track(x, y, _size(det), index, index)
                self._tracks.append(track)
                self.report.people += 1
                matched[k] = track

    def _companions_in_view(self, index: int, chosen: _Track) -> bool:
        """Whether someone seen together with the chosen person is still around."""
        return any(
            t is not chosen and t.born <= chosen.seen and index - t.seen < self.params.forget for t in self._tracks
        )

    def _forget(self, index: int) -> None:
        self._tracks = [t for t in self._tracks if t is self._chosen or index - t.seen < self.params.forget]

    # the first choice -------------------------------------------------------------------

    def _record_choice(self, index: int, detections: Sequence[Detection], chosen: int) -> None:
        by_x = sorted(range(len(detections)), key=lambda k: detections[k].center[0])
        d = detections[chosen]
        self.report = replace(self.report, frame=index, faces=len(detections), rank=by_x.index(chosen),
                              box=(round(d.x1), round(d.y1), round(d.x2), round(d.y2)))

    def _first_choice(self, detections: Sequence[Detection]) -> int | None:
        if not detections:
            return None
        order = range(len(detections))
        if self.choice == "index":
            by_x = sorted(order, key=lambda k: detections[k].center[0])
            return by_x[self.face_index] if self.face_index < len(by_x) else None
        if self.choice == "point":
            px, py = self.point
            holding = [k for k in order if _holds(detections[k], px, py)]
            if holding:
                return min(holding, key=lambda k: detections[k].area)
            return min(order, key=lambda k: math.hypot(detections[k].center[0] - px, detections[k].center[1] - py))
        return max(order, key=lambda k: detections[k].area)


def _holds(det: Detection, x: float, y: float) -> bool:
    return det.x1 <= x <= det.x2 and det.y1 <= y <= det.y2
