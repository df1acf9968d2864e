"""Upload bytes (any container FFmpeg reads, detected by content) -> float32 mono PCM."""

from __future__ import annotations

import io

from ..errors import InvalidRequest


def decode_audio(data: bytes, sample_rate: int):
    """Decode ``data`` to a 1-D float32 numpy array at ``sample_rate`` Hz, mono.

    Raises :class:`InvalidRequest` when the bytes are not audio FFmpeg can decode.
    """
    import av
    import numpy as np

    if not data:
        raise InvalidRequest("the uploaded file is empty", param="file")
    chunks = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            streams = [s for s in container.streams if s.type == "audio"]
            if not streams:
                raise InvalidRequest("the uploaded file has no audio stream", param="file")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(streams[0]):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except InvalidRequest:
        raise
    except (av.FFmpegError, ValueError, EOFError) as exc:
        raise InvalidRequest(
            "the uploaded file is not audio in a supported format "
            f"(flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav, webm): {exc}",
            param="file",
        ) from None
    if not chunks:
        raise InvalidRequest("the uploaded file contains no audio samples", param="file")
    return np.concatenate(chunks).astype(np.float32, copy=False)
