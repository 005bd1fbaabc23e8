"""Real-time core (Prefect-free): tick sources, bounded queue, bar aggregator, micro-batches, session."""

from marketpipe.realtime.aggregator import BarAggregator, MicroBatcher, interval_label
from marketpipe.realtime.queue import BoundedTickQueue, QueueStats
from marketpipe.realtime.session import RealtimeSession, SessionReport, install_sigterm
from marketpipe.realtime.sink import BarSink, HotStoreSink, default_flush
from marketpipe.realtime.sources import PolygonTickSource, SyntheticTickSource, TickSource
from marketpipe.realtime.ticks import SourceEnd, Tick, ticks_frame

__all__ = [
    "BarAggregator",
    "BarSink",
    "BoundedTickQueue",
    "HotStoreSink",
    "MicroBatcher",
    "PolygonTickSource",
    "QueueStats",
    "RealtimeSession",
    "SessionReport",
    "SourceEnd",
    "SyntheticTickSource",
    "Tick",
    "TickSource",
    "default_flush",
    "install_sigterm",
    "interval_label",
    "ticks_frame",
]
