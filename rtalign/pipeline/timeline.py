"""Times that keep going forward across the breaks of formats whose clock may jump (MPEG-TS, MPEG-PS: recordings
joined end to end, a camcorder that restarted its clock), by FFmpeg's own rule, so a file reads with the times
FFmpeg's tools and players give it. Every reader of a file (its video, its audio) runs one Timeline over all of
its packets in file order, so each reader moves every stream by the same amounts."""
from __future__ import annotations

import av

#: A packet this far (seconds, either way) from where its stream was heading is a break in the file's clock
#: (FFmpeg's -dts_delta_threshold default) ...
JUMP_S = 10.0
#: ... and so is one this far behind its stream's previous packet.
BACK_S = 0.1


class Timeline:
    """`place(packet)` moves each packet (of any stream, in file order) by the file's offset so far, after
    growing that offset by a break the packet shows: from then on the stream carries on where it was heading.
    A no-op for formats whose times cannot jump (av.format.Flags.ts_discont unset)."""

    def __init__(self, container):
        self.active = bool(container.format.flags & av.format.Flags.ts_discont.value)
        self.offset = 0.0                                  # seconds added to every packet from here on
        self._streams: dict[int, tuple[float, float]] = {}  # stream index → (previous dts, next dts expected)

    def place(self, packet: av.Packet) -> None:
        if not self.active or packet.dts is None or not packet.time_base:
            return
        tb = packet.time_base
        self._move(packet, self.offset, tb)
        dts = float(packet.dts * tb)
        seen = self._streams.get(packet.stream.index)
        if seen is not None:
            previous, expected = seen
            delta = dts - expected
            if abs(delta) > JUMP_S or dts + BACK_S < previous:
                self.offset -= delta
                self._move(packet, -delta, tb)
                dts = expected
        self._streams[packet.stream.index] = (dts, dts + _duration(packet))

    @staticmethod
    def _move(packet: av.Packet, seconds: float, tb) -> None:
        shift = round(seconds / tb)
        if shift:
            packet.dts += shift
            if packet.pts is not None:
                packet.pts += shift


def _duration(packet: av.Packet) -> float:
    """How long a packet lasts, seconds: its own duration, else a frame at its stream's rate (MPEG-TS video
    packets seldom say), else 0."""
    if packet.duration:
        return float(packet.duration * packet.time_base)
    rate = getattr(packet.stream, "average_rate", None) or getattr(packet.stream, "guessed_rate", None)
    return float(1 / rate) if rate else 0.0
