"""Audio for broadcasts: a content-addressed store on the daemon's disk, and offline
Vietnamese text-to-speech (espeak-ng). Nodes fetch media over HTTP from ``/media/<sha256>``.
"""
