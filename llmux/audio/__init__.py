"""The core owns audio containers: uploads are decoded to PCM, PCM is encoded for replies.

PyAV (FFmpeg) is imported only when audio arrives, so the server starts without it.
"""
