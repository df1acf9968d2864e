"""Upload bytes -> float32 mono PCM at the rate the ASR runtime asks for.

The container is recognised by its content (FFmpeg's probe over the bytes), never by the
file name or the part's content type: browsers and Open WebUI label uploads loosely
(``.mpga``/``.mpeg`` are MP3, ``.m4a``/``.mp4`` are AAC in MP4, ``.webm`` is Opus). Every
format OpenAI accepts decodes here: flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav, webm.

Durations are exact: MP3's encoder delay and padding (LAME tag), Opus pre-skip and AAC
priming (MP4 edit list) are removed by FFmpeg; AAC's padding at the end of an MP4 track is
cut here to the duration the container declares, which FFmpeg does not do by itself.
"""

from __future__ import annotations

import io

from ..errors import InvalidRequest

UPLOAD_FORMATS = ("flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm")
#: Longest audio accepted after decoding. 25 MB of low-bitrate Opus can hold many hours,
#: and decoded PCM is 64 kB per second at 16 kHz: a limit keeps one upload from taking
#: gigabytes of memory.
MAX_SECONDS = 3 * 3600.0
#: Lowest sample rate accepted. Real recordings have 8 kHz or more; a file declaring 1 Hz
#: would turn each of its samples into a second of PCM at the runtime's rate.
MIN_SAMPLE_RATE = 1000
#: Undecodable packets tolerated (a damaged frame in a long recording) before giving up.
MAX_BAD_PACKETS = 16


def decode_audio(data: bytes, sample_rate: int, *, max_seconds: float = MAX_SECONDS):
    """Decode ``data`` to a 1-D float32 numpy array at ``sample_rate`` Hz, mono.

    Raises :class:`InvalidRequest` (a 400) when the bytes are empty, are not audio FFmpeg
    can decode, hold no audio stream or no samples, or last more than ``max_seconds``: by
    the container's header before decoding, and by the decoded frames before each one is
    resampled, so memory stays within the PCM of ``max_seconds``.
    """
    import av
    import numpy as np

    if not data:
        raise InvalidRequest("the uploaded file is empty", param="file")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, EOFError) as exc:
        raise _not_audio(exc) from None
    with container:
        if not container.streams.audio:
            raise InvalidRequest(
                "the uploaded file has no audio stream (a "
                f"{container.format.long_name or container.format.name} file)", param="file")
        stream = container.streams.audio[0]
        declared = _declared_seconds(container, stream)
        if declared is not None and declared > max_seconds:
            raise _too_long(max_seconds, declared)
        if stream.codec_context.sample_rate:  # 0: not known before decoding
            _check_rate(stream.codec_context.sample_rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        limit = int(max_seconds * sample_rate)
        chunks, total, bad = [], 0, 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.InvalidDataError:
                    bad += 1
                    if bad > MAX_BAD_PACKETS:
                        raise
                    continue
                for frame in frames:
                    _check_rate(frame.sample_rate)
                    if total + frame.samples * sample_rate / frame.sample_rate > limit:
                        raise _too_long(max_seconds)
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray().reshape(-1))
                        total += chunks[-1].size
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.FFmpegError, ValueError, EOFError) as exc:
            if not chunks:
                raise _not_audio(exc) from None
            # a truncated upload: keep what decoded, like FFmpeg's own tools do
        declared = _declared_samples(container, stream, sample_rate)
    if not chunks:
        raise InvalidRequest("the uploaded file contains no audio samples", param="file")
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    if declared is not None and 0 < len(samples) - declared <= sample_rate // 5:
        samples = samples[:declared]  # AAC's end padding in MP4
    return samples


def _check_rate(rate: int) -> None:
    if rate < MIN_SAMPLE_RATE:
        raise InvalidRequest(f"the audio's sample rate of {rate} Hz is below the "
                             f"{MIN_SAMPLE_RATE} Hz accepted", param="file")


def _declared_seconds(container, stream) -> float | None:
    """How long the header says the audio is (FFmpeg bounds a WAV's by the bytes present)."""
    if stream.duration and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # in AV_TIME_BASE units
    return None


def _too_long(max_seconds: float, seconds: float | None = None) -> InvalidRequest:
    length = f" ({seconds / 60:.1f} minutes)" if seconds is not None else ""
    return InvalidRequest(
        f"the audio{length} is longer than the limit of {max_seconds / 60:g} minutes",
        param="file", code="audio_too_long")


def _declared_samples(container, stream, sample_rate: int) -> int | None:
    """The track length an MP4/M4A declares (exact, from its edit list), at ``sample_rate``."""
    if "mp4" not in container.format.name.split(","):
        return None
    if not stream.duration or stream.time_base is None:
        return None
    return int(round(float(stream.duration * stream.time_base) * sample_rate))


def _not_audio(exc: Exception) -> InvalidRequest:
    return InvalidRequest(
        "the uploaded file is not audio in a supported format "
        f"({', '.join(UPLOAD_FORMATS)}): {getattr(exc, 'strerror', None) or exc}",
        param="file",
    )
