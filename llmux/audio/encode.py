"""float32 mono PCM -> the bytes of an OpenAI ``response_format``."""

from __future__ import annotations

import io

# response_format -> (container, codec, sample rate or None to keep, content type)
FORMATS = {
    "mp3": ("mp3", "libmp3lame", None, "audio/mpeg"),
    "opus": ("ogg", "libopus", 48000, "audio/ogg"),
    "aac": ("adts", "aac", None, "audio/aac"),
    "flac": ("flac", "flac", None, "audio/flac"),
    "wav": ("wav", "pcm_s16le", None, "audio/wav"),
    "pcm": (None, None, None, "audio/pcm"),
}
PCM_RATE = 24000  # OpenAI's raw pcm: 24 kHz, 16-bit signed little-endian, mono


def content_type(response_format: str) -> str:
    return FORMATS[response_format][3]


def change_speed(samples, sample_rate: int, speed: float):
    """Tempo change without pitch change (FFmpeg's atempo), ``speed`` in [0.25, 4]."""
    if abs(speed - 1.0) < 1e-3:
        return samples
    import av
    import numpy as np

    graph = av.filter.Graph()
    src = graph.add_abuffer(format="flt", sample_rate=sample_rate, layout="mono")
    chain = [src]
    remaining = speed
    while remaining > 2.0 or remaining < 0.5:  # atempo takes 0.5..2 per stage
        step = 2.0 if remaining > 2.0 else 0.5
        chain.append(graph.add("atempo", str(step)))
        remaining /= step
    chain.append(graph.add("atempo", f"{remaining:.6f}"))
    sink = graph.add("abuffersink")
    chain.append(sink)
    for a, b in zip(chain, chain[1:]):
        a.link_to(b)
    graph.configure()
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
    )
    frame.sample_rate = sample_rate
    graph.push(frame)
    graph.push(None)
    out = []
    while True:
        try:
            out.append(graph.pull().to_ndarray().reshape(-1))
        except (av.error.EOFError, av.error.BlockingIOError):
            break
    return np.concatenate(out) if out else samples[:0]


def _resample(samples, rate: int, target: int):
    import av
    import numpy as np

    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target)
    parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(parts) if parts else samples[:0]


def encode_audio(samples, sample_rate: int, response_format: str) -> bytes:
    import av
    import numpy as np

    samples = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
    container_name, codec, rate, _ = FORMATS[response_format]
    if response_format == "pcm":
        if sample_rate != PCM_RATE:
            samples = _resample(samples, sample_rate, PCM_RATE)
        return (samples * 32767.0).astype("<i2").tobytes()
    out_rate = rate or sample_rate
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_name) as container:
        stream = container.add_stream(codec, rate=out_rate, layout="mono")
        fmt = stream.codec_context.codec.audio_formats[0].name
        resampler = av.AudioResampler(format=fmt, layout="mono", rate=out_rate)
        frame_size = 4096
        for start in range(0, len(samples), frame_size):
            chunk = samples[start:start + frame_size].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = None
            for resampled in resampler.resample(frame):
                container.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            container.mux(stream.encode(resampled))
        container.mux(stream.encode(None))
    return buffer.getvalue()
