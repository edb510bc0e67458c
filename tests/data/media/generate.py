"""Regenerate the audio fixtures of tests/unit/test_media_store.py (not run by the tests).

Each file is 1.5 s of a 440 Hz tone, mono, made by a real encoder:
FFmpeg's (through PyAV: ``pip install av`` in a throwaway venv) for MP3, Opus, M4A,
AAC (ADTS) and FLAC, and SoX (scripts/setup installs it) for Ogg Vorbis. ``video.mp4``
is three frames of MPEG-4 video and no sound: a container that is not audio.

    python tests/data/media/generate.py    # in a venv with av; sox on PATH
"""

from __future__ import annotations

import math
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).parent
SECONDS = 1.5


def tone(rate: int) -> np.ndarray:
    t = np.arange(int(rate * SECONDS)) / rate
    return (0.3 * np.sin(2 * math.pi * 440 * t) * 32767).astype(np.int16)


def encode(name: str, fmt: str, codec: str, rate: int, bitrate: int) -> None:
    with av.open(str(HERE / name), "w", format=fmt) as out:
        st = out.add_stream(codec, rate=rate, layout="mono")
        if bitrate:
            st.bit_rate = bitrate
        pcm = tone(rate)
        step = 1024
        for i in range(0, len(pcm), step):
            chunk = pcm[i:i + step]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            frame.time_base = Fraction(1, rate)
            for packet in st.encode(frame):
                out.mux(packet)
        for packet in st.encode(None):
            out.mux(packet)


def video(name: str) -> None:
    with av.open(str(HERE / name), "w", format="mp4") as out:
        st = out.add_stream("mpeg4", rate=10)
        st.width, st.height, st.pix_fmt = 16, 16, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 40 * i, np.uint8), format="rgb24")
            for packet in st.encode(frame):
                out.mux(packet)
        for packet in st.encode(None):
            out.mux(packet)


if __name__ == "__main__":
    encode("tone.mp3", "mp3", "libmp3lame", 44100, 32000)
    encode("tone.opus", "ogg", "libopus", 48000, 16000)
    encode("tone.m4a", "ipod", "aac", 44100, 32000)
    encode("tone.aac", "adts", "aac", 44100, 32000)
    encode("tone.flac", "flac", "flac", 8000, 0)
    subprocess.run(["sox", "-n", "-r", "22050", "-c", "1", str(HERE / "tone.ogg"), "synth", str(SECONDS),
                    "sine", "440", "vol", "0.3"], check=True)
    video("video.mp4")
