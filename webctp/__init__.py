"""webctp: China's CTP futures trading API over WebSocket + JSON, on Trio."""

__version__ = "0.1.0"
