"""Times that keep going forward across the breaks of formats whose clock may jump (MPEG-TS, MPEG-PS: recordings
joined end to end, a camcorder that restarted its clock), by FFmpeg's own rule, so a file reads with the times
FFmpeg's tools and players give it. Every reader of a file (its video, its audio) runs one Timeline over all of
its packets in file order, so each reader moves every stream by the same amounts."""
from __future__ import annotations

import av

#: A packet this far (seconds, either way) from where its stream was heading is a break in the file's clock
#: (FFmpeg's -dts_delta_threshold default) ...
JUMP_S = 10.0
#: ... and so is one this far behind its stream's previous packet (FFmpeg's rule: at a join, the earlier
#: recording's audio often runs a few ms past the later one's start).
BACK_S = 0.1


class Timeline:
    """`place(packet)` moves each packet (of any stream, in file order) by the file's offset: the one under which
    it carries on its own stream, of the latest two (at a join, the earlier recording's last packets of one
    stream may come after the later one's first packets of another), or, where neither does, a new one that
    makes it carry on exactly (a break). A no-op for formats whose times cannot jump (ts_discont unset).
    `breaks`: how many were found."""

    def __init__(self, container):
        self.active = bool(container.format.flags & av.format.Flags.ts_discont.value)
        self.breaks = 0
        self._offsets = [0.0]                               # seconds, the latest last
        self._streams: dict[int, tuple[float, float]] = {}  # stream index → (previous dts, next dts expected)

    def place(self, packet: av.Packet) -> None:
        if not self.active or packet.dts is None or not packet.time_base:
            return
        tb = packet.time_base
        raw = float(packet.dts * tb)
        seen = self._streams.get(packet.stream.index)
        offset = self._offsets[-1]
        if seen is not None:
            previous, expected = seen
            offset = min(self._offsets[-2:], key=lambda o: abs(raw + o - expected))
            delta = raw + offset - expected
            # a stream that only went quiet (an audio dropout) comes back where the others are: no break
            quiet = delta > JUMP_S and raw + offset <= max(p for p, _ in self._streams.values()) + JUMP_S
            if (abs(delta) > JUMP_S and not quiet) or raw + offset + BACK_S < previous:
                offset -= delta
                self._offsets.append(offset)
                self.breaks += 1
        shift = round(offset / tb)
        if shift:
            packet.dts += shift
            if packet.pts is not None:
                packet.pts += shift
        dts = float(packet.dts * tb)
        self._streams[packet.stream.index] = (dts, dts + _duration(packet))


def _duration(packet: av.Packet) -> float:
    """How long a packet lasts, seconds: its own duration, else a frame at its stream's rate (MPEG-TS video
    packets seldom say), else 0."""
    if packet.duration:
        return float(packet.duration * packet.time_base)
    rate = getattr(packet.stream, "average_rate", None) or getattr(packet.stream, "guessed_rate", None)
    return float(1 / rate) if rate else 0.0
