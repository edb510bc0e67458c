"""netmgr: one asyncio daemon for a province's smart Wi-Fi and smart radio networks."""

__version__ = "0.1.0"
